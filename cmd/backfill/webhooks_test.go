package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/webhooks"
)

// webhookEnv is what the api and workers of a webhook test run with.
func webhookEnv(s *stack, base string, extra ...string) []string {
	return s.env(append([]string{"BACKFILL_WEBHOOK_URL=" + base + "/webhooks/skilljar", "BACKFILL_WEBHOOK_DEBOUNCE_MS=200",
		"SKILLJAR_RATE_LIMIT=200/1s", "BACKFILL_SLICE_SECONDS=2"}, extra...)...)
}

// startWebhookAPI runs the api with the receiver's public URL set to itself, and waits
// until it is ready.
func (s *stack) startWebhookAPI(t testing.TB, extra ...string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	env := webhookEnv(s, base, append([]string{"BACKFILL_HTTP_ADDR=" + addr, "BACKFILL_API_TOKEN=" + apiToken,
		"SALESFORCE_REDIRECT_URL=" + base + "/salesforce/callback"}, extra...)...)
	api := startProcess(t, env, "api")
	c, err := apiclient.New(base, apiToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); c.Ready(s.Ctx) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("api did not become ready at %s", base)
		}
	}
	return api, base
}

// backfillFirst writes the whole org once, so changes land on rows whose parents exist.
func (s *stack) backfillFirst(t testing.TB) {
	t.Helper()
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	s.requireExact(t, s.WaitFor(t, run.ID, 2*time.Minute, "the backfill to end", func(r *runstore.Run) bool { return r.State.Terminal() }))
}

// waitExact polls until Salesforce matches the simulated Skilljar again.
func (s *stack) waitExact(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep := simcheck.Compare(s.Skilljar.Org(), s.Salesforce)
		if rep.Exact() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Salesforce still differs from Skilljar after %s:\n%s", timeout, rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) webhookStore(t testing.TB) *webhooks.Store {
	return webhooks.NewStore(s.RDB, s.Connection, webhooks.StoreConfig{})
}

// settingsPage is the settings page as the operator's browser gets it.
func settingsPage(t testing.TB, base string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.SetBasicAuth("operator", apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return page
}

func liveRuns(t testing.TB, s *stack) []*runstore.Run {
	runs, err := s.Store.List(s.Ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var live []*runstore.Run
	for _, r := range runs {
		if r.Kind == runstore.KindLive {
			live = append(live, r)
		}
	}
	return live
}

func TestWebhooksInstalledByTheCLICarryChangesToSalesforceAndADeactivationShows(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 200, Seed: 31}, salesforcesim.Config{})
	s.Skilljar.ConfigureWebhooks(skilljarsim.WebhookConfig{Retries: 2, Backoff: 50 * time.Millisecond})
	_, base := s.startWebhookAPI(t)
	startProcess(t, webhookEnv(s, base), "worker")
	s.backfillFirst(t)

	code, out := s.cli(t, base, 30*time.Second, "webhooks", "install")
	if code != 0 || !strings.Contains(out, "(all events): active") || !strings.Contains(out, "ping: succeeded=true status=200") {
		t.Fatalf("webhooks install (%d):\n%s", code, out)
	}
	subs := s.Skilljar.Webhooks()
	if len(subs) != 1 || subs[0].TargetURL != base+"/webhooks/skilljar" || subs[0].BasicAuthPassword == "" {
		t.Fatalf("subscriptions after install: %+v", subs)
	}
	if code, out = s.cli(t, base, 30*time.Second, "webhooks", "install"); code != 0 || len(s.Skilljar.Webhooks()) != 1 {
		t.Fatalf("a second install must update the one subscription (%d, %d subscriptions):\n%s", code, len(s.Skilljar.Webhooks()), out)
	}

	if page := settingsPage(t, base); !bytes.Contains(page, []byte(`id="webhooks" class="status ok"`)) {
		t.Errorf("the page's webhook block is not green after install:\n%s", page)
	}

	changed := s.Skilljar.ChangeLearners(0.1)
	s.waitExact(t, time.Minute)
	if len(liveRuns(t, s)) == 0 {
		t.Fatal("Salesforce caught up without a live run: the test did not exercise webhooks")
	}
	if n := s.Skilljar.CallCount("GET /v1/users/{id}"); n > len(changed) {
		t.Errorf("%d learner lookups for %d changed learners", n, len(changed))
	}

	// The receiver refuses what is not Skilljar's: a wrong password, an oversized body.
	creds, err := s.webhookStore(t).Credentials(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	post := func(user, pass string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/skilljar", bytes.NewReader(body))
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	event := []byte(`{"type":"COURSE_COMPLETION","user":{"id":"` + changed[0] + `"}}`)
	if st := post(creds.Username, creds.Password+"x", event); st != http.StatusUnauthorized {
		t.Errorf("a wrong password got %d, want 401", st)
	}
	if st := post(creds.Username, creds.Password, bytes.Repeat([]byte("x"), 70<<10)); st != http.StatusRequestEntityTooLarge {
		t.Errorf("a 70 KiB body got %d, want 413", st)
	}
	if st := post(creds.Username, creds.Password, []byte(`{"type":"COURSE_COMPLETION","who":"nobody"}`)); st != http.StatusOK {
		t.Errorf("a body naming no learner got %d, want 200 (kept and counted)", st)
	}

	// The receiver loses its credentials: Skilljar's next delivery gets a 401 and Skilljar
	// turns the subscription off.
	if err := s.webhookStore(t).DeleteCredentials(s.Ctx); err != nil {
		t.Fatal(err)
	}
	s.Skilljar.ChangeLearners(0.01)
	deadline := time.Now().Add(30 * time.Second)
	for s.Skilljar.Webhooks()[0].Active && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	code, out = s.cli(t, base, 30*time.Second, "webhooks", "status")
	if code == 0 || !strings.Contains(out, "DEACTIVATED (HTTP_4XX_RESPONSE)") || !strings.Contains(out, "unknown 1") {
		t.Fatalf("webhooks status after a 401 must fail naming the reason (%d):\n%s", code, out)
	}
	if page := settingsPage(t, base); !bytes.Contains(page, []byte(`id="webhooks" class="status bad"`)) || !bytes.Contains(page, []byte("deactivated the webhook (HTTP_4XX_RESPONSE)")) {
		t.Errorf("the page's webhook block is not red with the reason:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`backfill_webhook_subscriptions{reason="HTTP_4XX_RESPONSE",state="deactivated"} 1`)) {
		t.Errorf("/metrics does not count the deactivated subscription:\n%s", metrics)
	}
	// The next catch-up compares every learner, not only those whose fingerprint moved.
	catchup, err := s.Engine.StartCatchup(s.Ctx, runstore.Scope{SinkMode: runstore.SinkCollections}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	catchup = s.WaitFor(t, catchup.ID, time.Minute, "the catch-up to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	if catchup.State != runstore.Succeeded || len(catchup.Streams) == 0 || !catchup.Streams[0].Full {
		t.Fatalf("catch-up after a deactivation ended %s with streams %+v: want a full snapshot first", catchup.State, catchup.Streams)
	}
	learners := len(s.Skilljar.Org().Learners)
	events, err := s.Store.Events(s.Ctx, catchup.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events {
		found = found || (ev.Kind == "changes_found" && strings.Contains(ev.Message, fmt.Sprintf("pass 1: %d learners changed", learners)))
	}
	if !found {
		t.Errorf("the catch-up did not find all %d learners changed: %+v", learners, events)
	}
	s.waitExact(t, time.Minute)
}

func TestWebhookDeliveriesWhileNoWorkerRunsAreAllWrittenOnceOneStarts(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 200, Seed: 32}, salesforcesim.Config{})
	_, base := s.startWebhookAPI(t)
	w := startProcess(t, webhookEnv(s, base), "worker")
	s.backfillFirst(t)
	w.signal(t, syscall.SIGTERM)
	w.wait(t, 30*time.Second)

	if code, out := s.cli(t, base, 30*time.Second, "webhooks", "install"); code != 0 {
		t.Fatalf("webhooks install (%d):\n%s", code, out)
	}
	changed := s.Skilljar.ChangeLearners(0.1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sent, _ := s.Skilljar.WebhookDeliveries(); sent >= len(changed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Skilljar did not deliver %d changes to the api", len(changed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // longer than the debounce: a worker, were one running, would write
	if simcheck.Compare(s.Skilljar.Org(), s.Salesforce).Exact() {
		t.Fatal("Salesforce caught up with no worker running: the test proves nothing")
	}
	st, err := s.webhookStore(t).Stats(s.Ctx)
	if err != nil || st.Pending != int64(len(changed)) {
		t.Fatalf("%d learners queued for %d changed (%v)", st.Pending, len(changed), err)
	}

	startProcess(t, webhookEnv(s, base), "worker")
	s.waitExact(t, time.Minute)
	for _, r := range liveRuns(t, s) {
		r = s.WaitFor(t, r.ID, 30*time.Second, "the live run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
		if r.State != runstore.Succeeded {
			t.Errorf("live run %s ended %s: %s", r.ID, r.State, r.Error)
		}
	}
}

func TestABurstOfDeliveriesCostsOneLookupPerLearnerAndNo429(t *testing.T) {
	t.Parallel()
	// The simulator allows 240 calls a (scaled) minute of one second, a little above the
	// engine's 200/1s: any call past the shared budget would be a 429.
	s := newStack(t, skilljarsim.Config{Users: 300, Seed: 33, PerMinute: 240, TimeScale: 60}, salesforcesim.Config{})
	// A debounce longer than the burst takes to send, so each learner is due once.
	_, base := s.startWebhookAPI(t, "BACKFILL_WEBHOOK_DEBOUNCE_MS=3000")
	startProcess(t, webhookEnv(s, base, "BACKFILL_WEBHOOK_DEBOUNCE_MS=3000"), "worker")
	s.backfillFirst(t)
	if code, out := s.cli(t, base, 30*time.Second, "webhooks", "install"); code != 0 {
		t.Fatalf("webhooks install (%d):\n%s", code, out)
	}
	creds, err := s.webhookStore(t).Credentials(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	learners := s.Skilljar.Org().Learners[:50]
	lookups, progress := s.Skilljar.CallCount("GET /v1/users/{id}"), s.Skilljar.CallCount("GET /v1/users/{id}/published-courses")
	for i := range 500 {
		body := fmt.Sprintf(`{"type":"LESSON_COMPLETION","id":"ev%d","user":{"id":%q}}`, i, learners[i%len(learners)].ID)
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/skilljar", strings.NewReader(body))
		req.SetBasicAuth(creds.Username, creds.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery %d got %d", i, resp.StatusCode)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.webhookStore(t).Stats(s.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		active := false
		for _, r := range liveRuns(t, s) {
			active = active || !r.State.Terminal()
		}
		if st.Pending == 0 && !active && len(liveRuns(t, s)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the burst was not written within a minute: %d pending", st.Pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := s.Skilljar.CallCount("GET /v1/users/{id}") - lookups; n < 1 || n > len(learners) {
		t.Errorf("%d learner lookups for 500 deliveries naming %d learners", n, len(learners))
	}
	if n := s.Skilljar.CallCount("GET /v1/users/{id}/published-courses") - progress; n > len(learners) {
		t.Errorf("%d progress reads for 500 deliveries naming %d learners", n, len(learners))
	}
	for _, c := range s.Skilljar.Calls() {
		if c.Status == http.StatusTooManyRequests {
			t.Errorf("%d calls to %s got 429", c.Count, c.Endpoint)
		}
	}
}

func TestALiveRunWritesNoLearnerOutsideTheSettingsDomains(t *testing.T) {
	t.Parallel()
	const allowed = "learn.example.com"
	s := newStack(t, skilljarsim.Config{Users: 200, Seed: 34}, salesforcesim.Config{})
	_, base := s.startWebhookAPI(t)
	startProcess(t, webhookEnv(s, base), "worker")
	c, err := apiclient.New(base, apiToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutSettings(s.Ctx, settings.Settings{Domains: []string{allowed}}); err != nil {
		t.Fatal(err)
	}
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{Domains: []string{allowed}, SinkMode: runstore.SinkCollections}, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, run.ID, 2*time.Minute, "the backfill to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	if code, out := s.cli(t, base, 30*time.Second, "webhooks", "install"); code != 0 {
		t.Fatalf("webhooks install (%d):\n%s", code, out)
	}
	var inside, insideEmail, outside string
	for _, l := range s.Skilljar.Org().Learners {
		member := slices.ContainsFunc(l.Memberships, func(m skilljarsim.Membership) bool { return m.Domain == allowed })
		switch {
		case member && inside == "":
			inside, insideEmail = l.ID, l.Email
		case !member && outside == "":
			outside = l.ID
		}
	}
	creds, err := s.webhookStore(t).Credentials(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One delivery names its learner by email only, the other by id.
	listed := s.Skilljar.CallCount("GET /v1/users")
	for _, body := range []string{`{"type":"COURSE_ENROLLMENT","user":{"email":"` + insideEmail + `"}}`, `{"type":"COURSE_ENROLLMENT","user":{"id":"` + outside + `"}}`} {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/skilljar", strings.NewReader(body))
		req.SetBasicAuth(creds.Username, creds.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var live *runstore.Run
	for deadline := time.Now().Add(time.Minute); live == nil || !live.State.Terminal(); time.Sleep(100 * time.Millisecond) {
		if runs := liveRuns(t, s); len(runs) > 0 {
			live = runs[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no live run ended within a minute")
		}
	}
	if c := live.Counters["student"]; live.State != runstore.Succeeded || c.Read != 2 || c.Filtered != 1 {
		t.Fatalf("live run %s with student counters %+v: want 2 read, the outsider filtered", live.State, c)
	}
	if _, ok := s.Salesforce.RecordByExternalID("skilljar__Student__c", "skilljar__Obfuscated_Id__c", outside); ok {
		t.Errorf("learner %s of no allowed domain was written to Salesforce", outside)
	}
	if _, ok := s.Salesforce.RecordByExternalID("skilljar__Student__c", "skilljar__Obfuscated_Id__c", inside); !ok {
		t.Errorf("learner %s of %s is not in Salesforce", inside, allowed)
	}
	if s.Skilljar.CallCount("GET /v1/users") == listed {
		t.Error("the learner named by email was not looked up by email")
	}
}
