package httpapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// requireStatus fails the test unless the answer has the status.
func requireStatus(t *testing.T, r *apitest.Response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
	}
}

// requireError fails the test unless the answer is the error given.
func requireError(t *testing.T, r *apitest.Response, status int, code, field string) httpapi.ErrorBody {
	t.Helper()
	requireStatus(t, r, status)
	b := r.Error(t)
	if b.Error.Code != code || b.Error.Field != field || b.Error.Message == "" {
		t.Fatalf("%s %s: error %+v, want code %q field %q and a message", r.Request.Method, r.Request.URL.Path, b.Error, code, field)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error answered as %q", ct)
	}
	return b
}

func startRun(t *testing.T, e *apitest.Env, body any, header ...string) *runstore.Run {
	t.Helper()
	r := e.Do(t, http.MethodPost, "/v1/backfills", body, header...)
	requireStatus(t, r, http.StatusAccepted)
	var run runstore.Run
	r.JSON(t, &run)
	return &run
}

func getRun(t *testing.T, e *apitest.Env, id string) *runstore.Run {
	t.Helper()
	r := e.Do(t, http.MethodGet, "/v1/backfills/"+id, nil)
	requireStatus(t, r, http.StatusOK)
	var run runstore.Run
	r.JSON(t, &run)
	return &run
}

// waitEnded polls the API until the run reaches a terminal state.
func waitEnded(t *testing.T, e *apitest.Env, id string) *runstore.Run {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		run := getRun(t, e, id)
		if run.State.Terminal() {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after 60s", id, run.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartBackfillAnswers202WithTheQueuedRunAndEnqueuesOneSlice(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	d := e.Skilljar.Org().Domains[0].Name
	run := startRun(t, e, map[string]any{"domains": []string{d}, "objects": []string{"student", "course"}, "dry_run": true, "sink_mode": "collections"})
	if run.State != runstore.Queued || run.Kind != runstore.KindBackfill || run.Trigger != "api" {
		t.Fatalf("run %+v", run.Meta)
	}
	want := runstore.Scope{Domains: []string{d}, Objects: []string{"course", "student"}, DryRun: true, SinkMode: "collections", ContactMatch: "created"}
	if got, _ := json.Marshal(run.Scope); string(got) != string(mustJSON(t, want)) {
		t.Fatalf("scope %s, want %s", got, mustJSON(t, want))
	}
	if n := e.Enqueued(t); n != 1 {
		t.Fatalf("%d tasks enqueued, want the run's first slice", n)
	}
	if got := getRun(t, e, run.ID); got.ID != run.ID || got.State != runstore.Queued {
		t.Fatalf("GET the run: %+v", got.Meta)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStartTakesWhatItLeavesOutFromTheSavedSettings(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	doms := []string{e.Skilljar.Org().Domains[0].Name, e.Skilljar.Org().Domains[1].Name}
	r := e.Do(t, http.MethodPut, "/v1/settings", settings.Settings{
		Domains: doms, Objects: []string{"student", "course_progress"}, LinkContacts: true, CreateContacts: true,
		ContactMatch: "modified", SinkMode: "bulk",
	})
	requireStatus(t, r, http.StatusOK)

	run := startRun(t, e, nil)
	sc := run.Scope
	if !slices.Equal(sc.Domains, doms) || !slices.Equal(sc.Objects, []string{"course_progress", "student"}) ||
		sc.SinkMode != "bulk" || !sc.LinkContacts || !sc.CreateContacts || sc.ContactMatch != "modified" || sc.DryRun {
		t.Fatalf("scope from settings: %+v", sc)
	}

	// Naming a subset narrows the run; the rest still comes from the settings.
	run = startRun(t, e, httpapi.StartBody{Domains: doms[1:], SinkMode: "collections", DryRun: true})
	if sc := run.Scope; !slices.Equal(sc.Domains, doms[1:]) || sc.SinkMode != "collections" || !sc.LinkContacts || len(sc.Objects) != 2 {
		t.Fatalf("narrowed scope: %+v", sc)
	}

	// Naming something outside the settings' allow-list is refused, and starts nothing.
	before := e.Enqueued(t)
	outside := e.Skilljar.Org().Domains[2].Name
	b := requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", httpapi.StartBody{Domains: []string{outside}}), http.StatusBadRequest, httpapi.CodeInvalidValue, "domains")
	if !strings.Contains(b.Error.Message, outside) || !strings.Contains(b.Error.Message, doms[0]) {
		t.Fatalf("message %q should name the domain and the allow-list", b.Error.Message)
	}
	requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", httpapi.StartBody{Objects: []string{"course"}}), http.StatusBadRequest, httpapi.CodeInvalidValue, "objects")
	if n := e.Enqueued(t); n != before {
		t.Fatalf("refused starts enqueued %d tasks", n-before)
	}
}

func TestIdempotencyKeyReplaysTheFirstRunAndStartsNothingMore(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	first := startRun(t, e, nil, "Idempotency-Key", "k-123")
	r := e.Do(t, http.MethodPost, "/v1/backfills", nil, "Idempotency-Key", "k-123")
	requireStatus(t, r, http.StatusAccepted)
	var again runstore.Run
	r.JSON(t, &again)
	if again.ID != first.ID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay gave run %s (replayed header %q), want %s", again.ID, r.Header.Get("Idempotent-Replayed"), first.ID)
	}
	if n := e.Enqueued(t); n != 1 {
		t.Fatalf("%d tasks enqueued, want 1", n)
	}
	requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", nil, "Idempotency-Key", "has space"), http.StatusBadRequest, httpapi.CodeInvalidValue, "Idempotency-Key")
	requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", nil, "Idempotency-Key", strings.Repeat("k", 201)), http.StatusBadRequest, httpapi.CodeInvalidValue, "Idempotency-Key")
}

func TestASecondRunOfAnActiveScopeAnswers409NamingTheActiveRun(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	first := startRun(t, e, httpapi.StartBody{Objects: []string{"course"}})
	b := requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", httpapi.StartBody{Objects: []string{"course"}}), http.StatusConflict, httpapi.CodeRunActive, "")
	if b.ActiveRunID != first.ID || !strings.Contains(b.Error.Message, first.ID) {
		t.Fatalf("409 body %+v, want active_run_id %s", b, first.ID)
	}
	if n := e.Enqueued(t); n != 1 {
		t.Fatalf("%d tasks enqueued, want only the first run's", n)
	}
	// Another scope is not in the way.
	startRun(t, e, httpapi.StartBody{Objects: []string{"student"}})
}

func TestRejectedStartRequestsCreateAndEnqueueNothing(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	cases := []struct {
		name   string
		body   any
		header []string
		status int
		code   string
		field  string
	}{
		{"malformed JSON", `{"domains": [`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"syntax error", `{"domains" ["a"]}`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"not an object", `["a"]`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"two values", `{} {}`, nil, 400, httpapi.CodeInvalidJSON, ""},
		{"unknown field", `{"domain": ["a"]}`, nil, 400, httpapi.CodeUnknownField, "domain"},
		{"contacts are the settings' business", `{"link_contacts": true}`, nil, 400, httpapi.CodeUnknownField, "link_contacts"},
		{"domains not a list", `{"domains": "a"}`, nil, 400, httpapi.CodeInvalidType, "domains"},
		{"a number among domains", `{"domains": [1]}`, nil, 400, httpapi.CodeInvalidType, "domains"},
		{"dry_run as a string", `{"dry_run": "yes"}`, nil, 400, httpapi.CodeInvalidType, "dry_run"},
		{"unknown domain", `{"domains": ["nowhere.example.com"]}`, nil, 400, httpapi.CodeInvalidValue, "domains"},
		{"unknown object", `{"objects": ["lesson"]}`, nil, 400, httpapi.CodeInvalidValue, "objects"},
		{"unknown sink mode", `{"sink_mode": "fax"}`, nil, 400, httpapi.CodeInvalidValue, "sink_mode"},
		{"oversize body", `{"domains": ["` + strings.Repeat("a", 70<<10) + `"]}`, nil, 413, httpapi.CodeBodyTooLarge, ""},
		{"form body", `domains=a`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, httpapi.CodeUnsupportedMedia, "Content-Type"},
		{"cross-site browser post", `{}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, httpapi.CodeCrossOrigin, ""},
		{"foreign origin", `{}`, []string{"Origin", "https://evil.example"}, 403, httpapi.CodeCrossOrigin, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := requireError(t, e.Do(t, http.MethodPost, "/v1/backfills", tc.body, tc.header...), tc.status, tc.code, tc.field)
			if (tc.code == httpapi.CodeUnknownField || tc.code == httpapi.CodeInvalidType) && !strings.Contains(b.Error.Message, tc.field) {
				t.Errorf("message %q does not name the field", b.Error.Message)
			}
		})
	}
	if n := e.Enqueued(t); n != 0 {
		t.Fatalf("rejected requests enqueued %d tasks", n)
	}
	if runs, err := e.Store.List(e.Ctx, 10); err != nil || len(runs) != 0 {
		t.Fatalf("rejected requests created runs: %d (%v)", len(runs), err)
	}
}

func TestRunIDsAreCheckedBeforeAnythingIsLookedUp(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	unknown := runstore.NewID(time.Now(), 0xabcdef)
	routes := []struct{ method, suffix string }{
		{http.MethodGet, ""}, {http.MethodPost, "/pause"}, {http.MethodPost, "/resume"}, {http.MethodPost, "/cancel"},
		{http.MethodPost, "/retry-rejected"}, {http.MethodGet, "/events"}, {http.MethodGet, "/rejected"}, {http.MethodGet, "/samples"},
	}
	for _, rt := range routes {
		requireError(t, e.Do(t, rt.method, "/v1/backfills/not-a-run"+rt.suffix, nil), http.StatusBadRequest, httpapi.CodeInvalidID, "id")
		requireError(t, e.Do(t, rt.method, "/v1/backfills/"+unknown+rt.suffix, nil), http.StatusNotFound, httpapi.CodeNotFound, "id")
	}
	// With Redis gone, a malformed id still gets its 400: it never reached Redis.
	e.Redis.Stop()
	requireError(t, e.Do(t, http.MethodGet, "/v1/backfills/r2025"+"'; DROP", nil), http.StatusBadRequest, httpapi.CodeInvalidID, "id")
	requireError(t, e.Do(t, http.MethodGet, "/v1/backfills/"+unknown, nil), http.StatusInternalServerError, httpapi.CodeInternal, "")
}

func TestPauseResumeAndCancelMoveTheRunAndRefuseWhatItsStateForbids(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	run := startRun(t, e, nil)
	path := "/v1/backfills/" + run.ID

	act := func(action string, want runstore.State) {
		t.Helper()
		r := e.Do(t, http.MethodPost, path+"/"+action, nil)
		requireStatus(t, r, http.StatusOK)
		var got runstore.Run
		r.JSON(t, &got)
		if got.ID != run.ID || got.State != want {
			t.Fatalf("%s: run %s is %s, want %s", action, got.ID, got.State, want)
		}
	}
	act("pause", runstore.Paused)
	requireError(t, e.Do(t, http.MethodPost, path+"/pause", nil), http.StatusConflict, httpapi.CodeInvalidState, "")
	act("resume", runstore.Running)
	// No worker took the first slice yet, so it is the one that continues the run: a resume
	// must neither lose it nor add a second.
	if n := e.Enqueued(t); n != 1 {
		t.Fatalf("%d tasks after resume, want the one slice that continues the run", n)
	}
	act("cancel", runstore.Cancelled)
	requireError(t, e.Do(t, http.MethodPost, path+"/resume", nil), http.StatusConflict, httpapi.CodeInvalidState, "")

	r := e.Do(t, http.MethodGet, path+"/events", nil)
	requireStatus(t, r, http.StatusOK)
	var events httpapi.EventList
	r.JSON(t, &events)
	var kinds []string
	for _, ev := range events.Events {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []string{"paused", "resumed", "cancelled"}) {
		t.Fatalf("event kinds %v", kinds)
	}
	r = e.Do(t, http.MethodGet, path+"/events?limit=1", nil)
	r.JSON(t, &events)
	if len(events.Events) != 1 || events.Events[0].Kind != "cancelled" {
		t.Fatalf("events?limit=1 gave %+v, want the latest", events.Events)
	}
}

func TestListShowsNewestFirstWithinTheLimit(t *testing.T) {
	t.Parallel()
	// Runs are ordered by the store's creation time, in milliseconds: its clock steps between them.
	now := clock.NewManual(time.Now())
	e := apitest.Start(t, apitest.Options{Now: now.Now})
	var ids []string
	for _, obj := range []string{"course", "student", "published_course"} {
		ids = append(ids, startRun(t, e, httpapi.StartBody{Objects: []string{obj}}).ID)
		now.Advance(time.Second)
	}
	r := e.Do(t, http.MethodGet, "/v1/backfills?limit=2", nil)
	requireStatus(t, r, http.StatusOK)
	var list httpapi.RunList
	r.JSON(t, &list)
	if len(list.Runs) != 2 || list.Runs[0].ID != ids[2] || list.Runs[1].ID != ids[1] {
		t.Fatalf("list: %d runs, want %s then %s", len(list.Runs), ids[2], ids[1])
	}
	for _, q := range []string{"limit=0", "limit=abc", "limit=1001", "limit=-1"} {
		requireError(t, e.Do(t, http.MethodGet, "/v1/backfills?"+q, nil), http.StatusBadRequest, httpapi.CodeInvalidValue, "limit")
	}
}

func TestRejectedRecordsPageWithTotalsAndRetryRejectedStartsARedriveRun(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	org := e.Skilljar.Org()
	for i := 0; i < 3; i++ {
		e.Salesforce.InjectRecordError("skilljar__Student__c", org.Learners[i].ID, "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1)
	}
	e.StartWorker(t)
	run := startRun(t, e, httpapi.StartBody{SinkMode: "collections"})
	path := "/v1/backfills/" + run.ID

	// Retrying before the run ended is refused.
	requireError(t, e.Do(t, http.MethodPost, path+"/retry-rejected", nil), http.StatusConflict, httpapi.CodeInvalidState, "")
	if run = waitEnded(t, e, run.ID); run.State != runstore.Succeeded {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}

	r := e.Do(t, http.MethodGet, path+"/rejected?offset=1&limit=1", nil)
	requireStatus(t, r, http.StatusOK)
	var page httpapi.RejectedPage
	r.JSON(t, &page)
	// Each refused student also takes its progress rows down, as their parent is missing.
	if c := run.Counters["student"]; c.Rejected != 3 || page.Total <= 3 || page.Offset != 1 || page.Limit != 1 || len(page.Rejected) != 1 {
		t.Fatalf("page: total %d offset %d limit %d rows %d", page.Total, page.Offset, page.Limit, len(page.Rejected))
	}
	if rj := page.Rejected[0]; rj.Code == "" || rj.ExternalID == "" || len(rj.Row) == 0 {
		t.Fatalf("rejected row %+v", rj)
	}
	requireError(t, e.Do(t, http.MethodGet, path+"/rejected?offset=-1", nil), http.StatusBadRequest, httpapi.CodeInvalidValue, "offset")

	r = e.Do(t, http.MethodPost, path+"/retry-rejected", nil)
	requireStatus(t, r, http.StatusAccepted)
	var retry runstore.Run
	r.JSON(t, &retry)
	if retry.Kind != runstore.KindRedrive || retry.Parent != run.ID {
		t.Fatalf("retry run %+v", retry.Meta)
	}
	if retry := waitEnded(t, e, retry.ID); retry.State != runstore.Succeeded || retry.Total().Written != page.Total {
		t.Fatalf("retry run ended %s with %+v; want all %d ledger rows written", retry.State, retry.Total(), page.Total)
	}
}

func TestDryRunSamplesAreServed(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 10})
	e.StartWorker(t)
	run := startRun(t, e, httpapi.StartBody{DryRun: true, Objects: []string{"course"}})
	if run = waitEnded(t, e, run.ID); run.State != runstore.Succeeded {
		t.Fatalf("dry run ended %s: %s", run.State, run.Error)
	}
	r := e.Do(t, http.MethodGet, "/v1/backfills/"+run.ID+"/samples", nil)
	requireStatus(t, r, http.StatusOK)
	var samples httpapi.SampleList
	r.JSON(t, &samples)
	if len(samples.Samples) == 0 || samples.Samples[0].Object != "course" || len(samples.Samples[0].Row) == 0 {
		t.Fatalf("samples %+v", samples)
	}
}

func TestSettingsRoundTripAndInvalidSettingsSaveNothing(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	r := e.Do(t, http.MethodGet, "/v1/settings", nil)
	requireStatus(t, r, http.StatusOK)
	if want := `{"domains":[],"objects":[],"environment":"","link_contacts":false,"create_contacts":false,"contact_match":"created","sink_mode":"auto","updated_at":null}`; strings.TrimSpace(string(r.Body)) != want {
		t.Fatalf("defaults %s, want %s", r.Body, want)
	}

	d := e.Skilljar.Org().Domains[1].Name
	r = e.Do(t, http.MethodPut, "/v1/settings", map[string]any{"domains": []string{d}, "environment": "sandbox", "link_contacts": true})
	requireStatus(t, r, http.StatusOK)
	var saved settings.Settings
	r.JSON(t, &saved)
	if !slices.Equal(saved.Domains, []string{d}) || saved.Environment != "sandbox" || !saved.LinkContacts || saved.UpdatedAt == nil {
		t.Fatalf("saved %+v", saved)
	}

	// A GET body sent back edited is accepted: updated_at is ignored.
	saved.SinkMode = "bulk"
	requireStatus(t, e.Do(t, http.MethodPut, "/v1/settings", saved), http.StatusOK)
	saved.SinkMode = "auto"

	bad := map[string]any{"domains": []string{"nowhere.example.com"}, "objects": []string{"lesson"}, "create_contacts": true, "sink_mode": "fax"}
	b := requireError(t, e.Do(t, http.MethodPut, "/v1/settings", bad), http.StatusBadRequest, httpapi.CodeInvalidSettings, "domains")
	var fields []string
	for _, f := range b.Error.Fields {
		fields = append(fields, f.Field)
	}
	if !slices.Equal(fields, []string{"domains", "objects", "create_contacts", "sink_mode"}) {
		t.Fatalf("problems %v", b.Error.Fields)
	}
	requireError(t, e.Do(t, http.MethodPut, "/v1/settings", ""), http.StatusBadRequest, httpapi.CodeInvalidJSON, "")
	requireError(t, e.Do(t, http.MethodPut, "/v1/settings", `{"link_contacts": "yes"}`), http.StatusBadRequest, httpapi.CodeInvalidType, "link_contacts")
	requireError(t, e.Do(t, http.MethodPut, "/v1/settings", `{"dry_run": true}`), http.StatusBadRequest, httpapi.CodeUnknownField, "dry_run")

	r = e.Do(t, http.MethodGet, "/v1/settings", nil)
	var now settings.Settings
	r.JSON(t, &now)
	if now.SinkMode != "bulk" || !slices.Equal(now.Domains, []string{d}) {
		t.Fatalf("after refused saves the settings are %+v", now)
	}
}

func TestConnectionStatusAndDisconnect(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	var st connection.Status
	r := e.Do(t, http.MethodGet, "/v1/connection", nil)
	requireStatus(t, r, http.StatusOK)
	if r.JSON(t, &st); st.State != connection.Disconnected {
		t.Fatalf("before connecting: %+v", st)
	}
	tok := e.Salesforce.MintTokens("api refresh_token")
	grant := connection.Grant{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, InstanceURL: tok.InstanceURL, LoginURL: e.Salesforce.LoginURL()}
	if err := e.Connection.Connect(e.Ctx, grant, connection.Status{OrgID: "00Dsim", Environment: "sandbox", InstanceURL: tok.InstanceURL}); err != nil {
		t.Fatal(err)
	}
	r = e.Do(t, http.MethodGet, "/v1/connection", nil)
	if r.JSON(t, &st); st.State != connection.Connected || st.OrgID != "00Dsim" || st.InstanceURL != tok.InstanceURL {
		t.Fatalf("connected status %+v", st)
	}
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
		if strings.Contains(string(r.Body), secret) {
			t.Fatal("the status answer carries a token")
		}
	}
	r = e.Do(t, http.MethodDelete, "/v1/connection", nil)
	requireStatus(t, r, http.StatusOK)
	if r.JSON(t, &st); st.State != connection.Disconnected {
		t.Fatalf("after DELETE: %+v", st)
	}
	if _, _, err := e.Connection.Grant(e.Ctx); err == nil {
		t.Fatal("the grant survived DELETE /v1/connection")
	}
}

func TestConnectionEventsListTheConnectionsActivity(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	for _, kind := range []string{connection.EventConnected, connection.EventNeedsReauth} {
		if err := e.Connection.AddEvent(e.Ctx, kind, "event "+kind); err != nil {
			t.Fatal(err)
		}
	}
	var list httpapi.ConnectionEventList
	r := e.Do(t, http.MethodGet, "/v1/connection/events?limit=10", nil)
	requireStatus(t, r, http.StatusOK)
	if r.JSON(t, &list); len(list.Events) != 2 || list.Events[0].Kind != connection.EventNeedsReauth || list.Events[1].Message != "event "+connection.EventConnected {
		t.Fatalf("events %+v", list.Events)
	}
	requireError(t, e.Do(t, http.MethodGet, "/v1/connection/events?limit=0", nil), http.StatusBadRequest, httpapi.CodeInvalidValue, "limit")
}

func TestConnectionRoutesSayWhenNoConnectionIsConfigured(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{NoConnection: true})
	requireError(t, e.Do(t, http.MethodGet, "/v1/connection", nil), http.StatusServiceUnavailable, httpapi.CodeNotConfigured, "")
	requireError(t, e.Do(t, http.MethodDelete, "/v1/connection", nil), http.StatusServiceUnavailable, httpapi.CodeNotConfigured, "")
	requireError(t, e.Do(t, http.MethodGet, "/v1/connection/events", nil), http.StatusServiceUnavailable, httpapi.CodeNotConfigured, "")
}

func TestWrongMethodAnswers405WithAllowAndUnknownRoutes404(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/backfills", "GET, POST"},
		{http.MethodGet, "/v1/backfills/" + runstore.NewID(time.Now(), 1) + "/pause", "POST"},
		{http.MethodPost, "/v1/settings", "GET, PUT"},
		{http.MethodPatch, "/v1/connection", "DELETE, GET"},
		{http.MethodPost, "/healthz", "GET"},
	} {
		r := e.Do(t, tc.method, tc.path, nil)
		requireError(t, r, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "")
		if got := r.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	requireError(t, e.Do(t, http.MethodGet, "/v1/nothing", nil), http.StatusNotFound, httpapi.CodeNotFound, "")
	requireError(t, e.Do(t, http.MethodGet, "/v1/backfills/"+runstore.NewID(time.Now(), 1)+"/nothing", nil), http.StatusNotFound, httpapi.CodeNotFound, "")
	requireError(t, e.DoRaw(t, http.MethodGet, "/nothing", nil), http.StatusNotFound, httpapi.CodeNotFound, "")
}

func TestHealthAndReadinessNeedNoTokenAndReadinessFollowsRedis(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		requireStatus(t, e.DoRaw(t, http.MethodGet, p, nil), http.StatusOK)
		requireStatus(t, e.DoRaw(t, http.MethodHead, p, nil), http.StatusOK)
	}
	e.Redis.Stop()
	requireStatus(t, e.DoRaw(t, http.MethodGet, "/healthz", nil), http.StatusOK)
	requireError(t, e.DoRaw(t, http.MethodGet, "/readyz", nil), http.StatusServiceUnavailable, httpapi.CodeNotReady, "")
}

func TestASkilljarFailureWhileCheckingDomainsAnswers502AndChangesNothing(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{})
	// More failures than the client retries: the domain check cannot get through.
	e.Skilljar.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/domains", Kind: skilljarsim.Fault5xx, Times: 100})
	domains := []string{e.Skilljar.Org().Domains[0].Name}
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/v1/backfills", httpapi.StartBody{Domains: domains}},
		{http.MethodPut, "/v1/settings", map[string]any{"domains": domains}},
	} {
		b := requireError(t, e.Do(t, req.method, req.path, req.body), http.StatusBadGateway, httpapi.CodeUpstreamUnavailable, "")
		if !strings.HasPrefix(b.Error.Message, "Skilljar could not be asked") {
			t.Fatalf("%s %s: message %q does not blame Skilljar", req.method, req.path, b.Error.Message)
		}
	}
	if n := e.Enqueued(t); n != 0 {
		t.Fatalf("a refused start enqueued %d tasks", n)
	}
	if st, err := e.Settings.Get(e.Ctx); err != nil || len(st.Domains) != 0 {
		t.Fatalf("refused settings were saved: %+v (%v)", st, err)
	}
}
