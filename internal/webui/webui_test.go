package webui_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/webui"
)

func TestEveryPageNeedsTheTokenAsTheBasicPassword(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	for _, path := range []string{"/", "/live/runs", "/runs/r20250102t150405a1b2c3d4", "/assets/app.css", "/no-such-page"} {
		for name, header := range map[string][]string{
			"no credentials": {"Authorization", ""},
			"wrong password": {"Authorization", "Basic " + basic("operator", "not-the-token")},
		} {
			p := e.request(t, http.MethodGet, path, nil, header...)
			if p.status != http.StatusUnauthorized {
				t.Fatalf("GET %s with %s: %d, want 401", path, name, p.status)
			}
			if got := p.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
				t.Fatalf("GET %s with %s: WWW-Authenticate %q; a browser only prompts for Basic", path, name, got)
			}
		}
	}
	e.get(t, "/").requireStatus(t, http.StatusOK).requireContains(t, "Authentication status", "Domain and Authentication settings", "Backfill")
}

func basic(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// validForm is a settings form that passes every check.
func validForm(e *testEnv) url.Values {
	domains := e.Skilljar.Org().Domains
	return url.Values{
		"domains":       {domains[0].Name, domains[2].Name},
		"environment":   {"sandbox"},
		"link_contacts": {"1"}, "create_contacts": {"1"},
		"contact_match": {"modified"},
		"objects":       {"student", "course"},
		"sink_mode":     {"collections"},
		"action":        {"save"},
	}
}

func TestSettingsFormSavesEveryFieldAndShowsThemBack(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	form := validForm(e)

	e.post(t, "/settings", form).requireRedirect(t, "/?saved=1")

	got, err := e.Settings.Get(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Settings{
		Domains: slices.Sorted(slices.Values(form["domains"])), Objects: []string{"course", "student"},
		Environment: "sandbox", LinkContacts: true, CreateContacts: true, ContactMatch: "modified", SinkMode: "collections",
	}
	got.UpdatedAt = nil
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("saved settings\n got %+v\nwant %+v", got, want)
	}
	p := e.get(t, "/?saved=1").requireStatus(t, http.StatusOK)
	p.requireContains(t, "Settings saved.",
		fmt.Sprintf(`value="%s" checked`, form["domains"][0]), `value="sandbox" checked`,
		`id="link-contacts" value="1" checked`, `value="modified" selected`, `value="collections" selected`)
	if strings.Contains(p.body, fmt.Sprintf(`value="%s" checked`, e.Skilljar.Org().Domains[1].Name)) {
		t.Fatal("a domain that was not saved is shown checked")
	}

	// A My Domain URL round-trips through its own radio button and text field.
	form.Set("environment", "mydomain")
	form.Set("my_domain_url", "https://acme.my.salesforce.com")
	e.post(t, "/settings", form).requireRedirect(t, "/?saved=1")
	e.get(t, "/").requireContains(t, `value="mydomain" checked`, `value="https://acme.my.salesforce.com"`)
}

func TestSaveAndAuthenticateSavesThenSendsTheBrowserToSalesforce(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	form := validForm(e)
	form.Set("action", "connect")

	e.post(t, "/settings", form).requireRedirect(t, "/salesforce/connect")

	if got, _ := e.Settings.Get(e.Ctx); got.Environment != "sandbox" {
		t.Fatalf("settings were not saved before authenticating: %+v", got)
	}
	// The browser repeats the POST at the 307's Location.
	connect := e.post(t, "/salesforce/connect", form)
	if loc := connect.header.Get("Location"); connect.status != http.StatusSeeOther || !strings.HasPrefix(loc, e.Salesforce.LoginURL()+"/services/oauth2/authorize?") {
		t.Fatalf("/salesforce/connect answered %d to %q, want the login host's authorize URL", connect.status, loc)
	}
}

func TestInvalidSettingsAreRefusedFieldByFieldAndNothingIsSaved(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	e.post(t, "/settings", validForm(e)).requireRedirect(t, "/?saved=1")
	before, err := e.Settings.Get(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		change func(url.Values)
		// want maps each field that must show an error to a phrase of its message.
		want map[string]string
	}{
		{"unknown domain", func(f url.Values) { f.Add("domains", "nowhere.example.com") },
			map[string]string{"domains": `"nowhere.example.com" is not a domain of this Skilljar organization`}},
		{"create contacts without linking", func(f url.Values) { f.Del("link_contacts") },
			map[string]string{"create_contacts": "Create Contacts needs Link Contacts"}},
		{"my domain without its URL", func(f url.Values) { f.Set("environment", "mydomain") },
			map[string]string{"environment": "enter your My Domain URL"}},
		{"my domain that is no URL", func(f url.Values) { f.Set("environment", "mydomain"); f.Set("my_domain_url", "acme salesforce") },
			map[string]string{"environment": "is not production, sandbox or a My Domain URL"}},
		{"unknown environment", func(f url.Values) { f.Set("environment", "staging") },
			map[string]string{"environment": `"staging" is not production, sandbox or a My Domain URL`}},
		{"unknown object", func(f url.Values) { f.Add("objects", "lesson") },
			map[string]string{"objects": `"lesson" is not a mapped object`}},
		{"unknown contact match", func(f url.Values) { f.Set("contact_match", "oldest") },
			map[string]string{"contact_match": `"oldest" is not a contact match rule`}},
		{"unknown sink mode", func(f url.Values) { f.Set("sink_mode", "carrier-pigeon") },
			map[string]string{"sink_mode": `"carrier-pigeon" is not a sink mode`}},
		{"every problem at once", func(f url.Values) {
			f.Set("environment", "mydomain")
			f.Del("link_contacts")
			f.Add("objects", "lesson")
			f.Add("domains", "nowhere.example.com")
		}, map[string]string{"environment": "My Domain URL", "create_contacts": "Link Contacts", "objects": "lesson", "domains": "nowhere.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := validForm(e)
			form.Set("environment", "production")
			tc.change(form)

			p := e.post(t, "/settings", form).requireStatus(t, http.StatusBadRequest)

			p.requireContains(t, "The settings were not saved")
			for _, field := range []string{"domains", "environment", "create_contacts", "contact_match", "objects", "sink_mode"} {
				msg := p.fieldError(field)
				phrase, want := tc.want[field]
				switch {
				case want && !strings.Contains(msg, phrase):
					t.Fatalf("field %s shows %q, want it to say %q", field, msg, phrase)
				case !want && msg != "":
					t.Fatalf("field %s shows %q but has no problem", field, msg)
				}
			}
			// What the operator typed stays in the form, so only the fault needs fixing.
			p.requireContains(t, fmt.Sprintf(`value="%s" checked`, form["domains"][0]))
			after, err := e.Settings.Get(e.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("refused settings changed what is saved:\nbefore %+v\n after %+v", before, after)
			}
		})
	}
}

func TestFormsFromAnotherOriginAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	run, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	enqueued := e.Enqueued(t)
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"cross-site fetch metadata", []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign Origin without fetch metadata", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	} {
		for _, path := range []string{"/settings", "/backfills", "/runs/" + run.ID + "/cancel"} {
			p := e.request(t, http.MethodPost, path, validForm(e), tc.header...)
			if p.status != http.StatusForbidden {
				t.Fatalf("POST %s with %s: %d, want 403", path, tc.name, p.status)
			}
		}
	}
	if got, _ := e.Settings.Get(e.Ctx); got.UpdatedAt != nil {
		t.Fatalf("a cross-origin form saved settings: %+v", got)
	}
	if n := e.Enqueued(t); n != enqueued {
		t.Fatalf("cross-origin forms enqueued %d tasks", n-enqueued)
	}
	if st := e.onlyRun(t).State; st != runstore.Queued {
		t.Fatalf("a cross-origin cancel moved the run to %s", st)
	}
	// The same forms from the page itself go through.
	e.post(t, "/settings", validForm(e)).requireRedirect(t, "/?saved=1")
}

func TestOversizeAndTamperedFormsAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	huge := validForm(e)
	huge.Set("padding", strings.Repeat("x", 70<<10))
	e.post(t, "/settings", huge).requireStatus(t, http.StatusRequestEntityTooLarge).requireContains(t, "nothing was changed")
	e.post(t, "/backfills", url.Values{"idempotency_key": {"../../etc"}}).requireStatus(t, http.StatusBadRequest).requireContains(t, "reload the page")
	if got, _ := e.Settings.Get(e.Ctx); got.UpdatedAt != nil {
		t.Fatal("an oversize form saved settings")
	}
	if n := e.Enqueued(t); n != 0 {
		t.Fatalf("a tampered form enqueued %d tasks", n)
	}
}

func TestBackfillButtonStartsOneRunOverTheSavedSettings(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	form := validForm(e)
	e.post(t, "/settings", form).requireRedirect(t, "/?saved=1")
	key := strings.Repeat("ab", 16)

	e.post(t, "/backfills", url.Values{"dry_run": {"1"}, "idempotency_key": {key}}).requireRedirect(t, "/?started=1#runs")
	// A double click sends the same form twice: still one run.
	e.post(t, "/backfills", url.Values{"dry_run": {"1"}, "idempotency_key": {key}}).requireRedirect(t, "/?started=1#runs")

	run := e.onlyRun(t)
	want := runstore.Scope{
		Domains: slices.Sorted(slices.Values(form["domains"])), Objects: []string{"course", "student"}, DryRun: true,
		SinkMode: "collections", LinkContacts: true, CreateContacts: true, ContactMatch: "modified",
	}
	if !reflect.DeepEqual(want, run.Scope) {
		t.Fatalf("run scope\n got %+v\nwant %+v", run.Scope, want)
	}
	if run.Trigger != "page" {
		t.Fatalf("trigger %q, want page", run.Trigger)
	}
	e.get(t, "/?started=1").requireContains(t, "Backfill started", fmt.Sprintf(`data-run="%s"`, run.ID), "(dry run)")

	// No worker runs here, so the first run is still active: another click is refused and
	// says which run holds the scope.
	p := e.post(t, "/backfills", url.Values{"dry_run": {"1"}, "idempotency_key": {strings.Repeat("cd", 16)}}).requireStatus(t, http.StatusConflict)
	p.requireContains(t, "still active", fmt.Sprintf(`href="/runs/%s"`, run.ID))
	e.onlyRun(t)
}

func TestRunPageShowsActivityAndRejectedRecordsAndReDrivesThem(t *testing.T) {
	t.Parallel()
	e := setup(t, 30)
	org := e.Skilljar.Org()
	for _, l := range org.Learners[:3] {
		e.Salesforce.InjectRecordError("skilljar__Student__c", l.ID, "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1)
	}
	e.StartWorker(t)
	form := validForm(e)
	for _, field := range []string{"domains", "objects", "link_contacts", "create_contacts"} {
		form.Del(field)
	}
	e.post(t, "/settings", form).requireRedirect(t, "/?saved=1")
	e.post(t, "/backfills", url.Values{}).requireRedirect(t, "/?started=1#runs")
	run := e.waitFor(t, e.onlyRun(t).ID)
	if run.State != runstore.Succeeded || run.Counters["student"].Rejected != 3 {
		t.Fatalf("run %s with %+v, want it to succeed with 3 students rejected", run.State, run.Counters["student"])
	}

	// Their progress rows are rejected too, for want of their parent.
	rejected := run.Total().Rejected
	p := e.get(t, "/runs/"+run.ID).requireStatus(t, http.StatusOK)
	p.requireContains(t, "Activity log", fmt.Sprintf("Rejected records (%d)", rejected), "FIELD_CUSTOM_VALIDATION_EXCEPTION",
		"Re-drive rejected records", `data-live="false"`, fmt.Sprintf("Records 1 to 2 of %d", rejected), "?offset=2#rejected")
	events, err := e.Store.Events(e.Ctx, run.ID, 1)
	if err != nil || len(events) == 0 {
		t.Fatalf("events: %v %v", events, err)
	}
	p.requireContains(t, events[0].Message)
	e.get(t, "/runs/"+run.ID+"?offset=2").requireContains(t, fmt.Sprintf("Records 3 to 4 of %d", rejected), "?offset=0#rejected")

	redirect := e.post(t, "/runs/"+run.ID+"/retry-rejected", nil)
	if redirect.status != http.StatusSeeOther || !strings.HasPrefix(redirect.header.Get("Location"), "/runs/") {
		t.Fatalf("re-drive answered %d to %q", redirect.status, redirect.header.Get("Location"))
	}
	retryID := strings.TrimPrefix(redirect.header.Get("Location"), "/runs/")
	if retryID == run.ID {
		t.Fatal("re-drive sent the browser back to the same run, not to the new one")
	}
	retry := e.waitFor(t, retryID)
	if retry.Parent != run.ID || retry.State != runstore.Succeeded || retry.Total().Written != rejected {
		t.Fatalf("re-drive run %+v ended %s with %+v", retry.Meta, retry.State, retry.Total())
	}
	e.get(t, "/runs/"+retryID).requireContains(t, "re-drives", "Salesforce refused no record of this run.")
}

func TestRunButtonsPauseResumeAndCancelAndRefuseWhatTheStateForbids(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	e.post(t, "/backfills", url.Values{}).requireRedirect(t, "/?started=1#runs")
	id := e.onlyRun(t).ID
	runPath := "/runs/" + id
	e.get(t, runPath).requireContains(t, `id="pause"`, `id="cancel"`, `data-live="true"`)

	e.post(t, runPath+"/pause", nil).requireRedirect(t, runPath)
	if st := e.onlyRun(t).State; st != runstore.Paused {
		t.Fatalf("after pause: %s", st)
	}
	e.get(t, runPath).requireContains(t, `id="resume"`)
	e.post(t, runPath+"/resume", nil).requireRedirect(t, runPath)
	if st := e.onlyRun(t).State; !st.Runnable() {
		t.Fatalf("after resume: %s", st)
	}
	e.post(t, runPath+"/cancel", nil).requireRedirect(t, runPath)
	if st := e.onlyRun(t).State; st != runstore.Cancelled {
		t.Fatalf("after cancel: %s", st)
	}

	p := e.post(t, runPath+"/pause", nil).requireStatus(t, http.StatusConflict)
	p.requireContains(t, `role="alert"`, "cancelled")
	if st := e.onlyRun(t).State; st != runstore.Cancelled {
		t.Fatalf("a refused pause changed the run to %s", st)
	}
	e.post(t, runPath+"/explode", nil).requireStatus(t, http.StatusNotFound)
}

func TestUnknownRunsAndPagesAnswer404(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	for _, path := range []string{"/runs/r20250102t150405a1b2c3d4", "/runs/NOT%20AN%20ID", "/live/runs/r20250102t150405a1b2c3d4", "/favicon.ico"} {
		e.get(t, path).requireStatus(t, http.StatusNotFound)
	}
	e.post(t, "/runs/r20250102t150405a1b2c3d4/cancel", nil).requireStatus(t, http.StatusNotFound)
}

func TestLiveFragmentsRenderJustTheirPart(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	e.get(t, "/live/runs").requireStatus(t, http.StatusOK).requireContains(t, "No runs yet.")
	e.post(t, "/backfills", url.Values{}).requireRedirect(t, "/?started=1#runs")
	id := e.onlyRun(t).ID

	table := e.get(t, "/live/runs").requireStatus(t, http.StatusOK)
	run := e.get(t, "/live/runs/"+id).requireStatus(t, http.StatusOK)

	for name, p := range map[string]page{"runs table": table, "run": run} {
		if strings.Contains(p.body, "<html") || strings.Contains(p.body, "<body") {
			t.Fatalf("the %s fragment is a whole page; the script swaps it into one", name)
		}
	}
	if !strings.HasPrefix(table.body, `<div id="runs-table" data-live-src="/live/runs">`) {
		t.Fatalf("runs fragment does not start with its live element: %.80s", table.body)
	}
	table.requireContains(t, fmt.Sprintf(`data-run="%s" data-state="queued"`, id))
	run.requireContains(t, fmt.Sprintf(`<div id="run-live" data-live-src="/live/runs/%s" data-live="true">`, id), "Activity log")
}

func TestAuthenticationStatusTurnsGreenAfterConnecting(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	p := e.get(t, "/")
	p.requireContains(t, `class="status bad" data-state="disconnected"`, "No Salesforce org is connected yet.", `<form method="post" action="/salesforce/connect"`)

	// The browser's round trip: our connect, Salesforce's authorize (the simulator approves at
	// once), our callback.
	authorize := e.post(t, "/salesforce/connect", nil).header.Get("Location")
	resp, err := e.browser.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(callback.String(), e.Server.URL+"/salesforce/callback") {
		t.Fatalf("authorize redirected to %q (%v)", resp.Header.Get("Location"), err)
	}
	e.get(t, callback.RequestURI()).requireRedirect(t, "/?connected=1")

	p = e.get(t, "/?connected=1")
	p.requireContains(t, "Salesforce connected.", `class="status ok" data-state="connected"`, e.Salesforce.InstanceURL(), "production")
	if strings.Contains(p.body, `id="reauth"`) {
		t.Fatal("a connected status still offers to re-authenticate")
	}
}

// statusFunc is a connection status for the cases a test cannot easily bring about.
type statusFunc func() (connection.Status, error)

func (f statusFunc) Status(context.Context) (connection.Status, error) { return f() }

func TestAuthenticationStatusSaysWhyItIsRedAndOffersToReauthenticate(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	lost := time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		connection webui.ConnectionStatus
		want       []string
	}{
		{"needs re-authentication", statusFunc(func() (connection.Status, error) {
			return connection.Status{State: connection.NeedsReauth, ConnectedAt: &lost, LastErrorAt: &lost,
				LastError: "the refresh token was revoked (invalid_grant): re-authenticate"}, nil
		}), []string{`class="status bad" data-state="needs_reauth"`, "Salesforce needs re-authentication.",
			"the refresh token was revoked (invalid_grant): re-authenticate (2025-06-01 08:30:00 UTC)", "Re-authenticate with Salesforce"}},
		{"status unreadable", statusFunc(func() (connection.Status, error) {
			return connection.Status{}, errors.New("redis: connection refused")
		}), []string{`class="status bad" data-state="unknown"`, "could not be read; the server log has the cause.", `id="reauth"`}},
		// As on a server without BACKFILL_SECRET_KEY or a Skilljar key.
		{"not configured", nil, []string{`data-state="not_configured"`, "No Salesforce connection is configured on this server",
			"No Skilljar API key is configured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := webui.New(webui.Config{}, webui.Deps{Runs: e.Engine, Ledger: e.Store, Settings: e.Settings, Connection: tc.connection})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp := apitest.Send(t, srv.Client(), req)
			p := page{status: resp.StatusCode, header: resp.Header, body: string(resp.Body)}
			p.requireStatus(t, http.StatusOK).requireContains(t, tc.want...)
			if strings.Contains(p.body, "connection refused") {
				t.Fatalf("the page shows an internal error's cause:\n%s", p.body)
			}
		})
	}
}
