package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/metrics"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// scrape reads the handler over HTTP and returns every sample by its series, written as
// name{label="value",...} with labels sorted; histograms give name_count and name_sum.
func scrape(t *testing.T, url string, header ...string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not the Prometheus text format: %v", url, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			series := func(suffix string) string {
				if len(labels) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[series("")] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[series("")] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[series("_count")] = float64(m.Histogram.GetSampleCount())
				out[series("_sum")] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func serve(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func requireValue(t *testing.T, got map[string]float64, series string, want float64) {
	t.Helper()
	v, ok := got[series]
	if !ok {
		t.Fatalf("no series %s in the scrape", series)
	}
	if v != want {
		t.Fatalf("%s = %v, want %v", series, v, want)
	}
}

func requireAbsent(t *testing.T, got map[string]float64, prefix string) {
	t.Helper()
	for s := range got {
		if strings.HasPrefix(s, prefix) {
			t.Fatalf("series %s is exported, want none starting with %s", s, prefix)
		}
	}
}

func TestQueueSeriesCountTasksByQueueAndState(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	opt := asynq.RedisClientOpt{Addr: rs.Addr}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = inspector.Close() })
	for i, o := range [][]asynq.Option{
		{asynq.Queue("backfill")},
		{asynq.Queue("backfill")},
		{asynq.Queue("backfill"), asynq.ProcessIn(time.Hour)},
		{asynq.Queue("critical")},
	} {
		if _, err := client.Enqueue(asynq.NewTask("backfill:slice", []byte(fmt.Sprint(i))), o...); err != nil {
			t.Fatal(err)
		}
	}
	if err := inspector.PauseQueue("critical"); err != nil {
		t.Fatal(err)
	}

	got := scrape(t, serve(t, metrics.New(metrics.Config{Queues: inspector})))

	requireValue(t, got, `asynq_queue_size{queue="backfill"}`, 3)
	requireValue(t, got, `asynq_tasks_enqueued_total{queue="backfill",state="pending"}`, 2)
	requireValue(t, got, `asynq_tasks_enqueued_total{queue="backfill",state="scheduled"}`, 1)
	requireValue(t, got, `asynq_queue_size{queue="critical"}`, 1)
	requireValue(t, got, `asynq_queue_paused_total{queue="critical"}`, 1)
	requireValue(t, got, `asynq_queue_paused_total{queue="backfill"}`, 0)
	requireValue(t, got, `asynq_tasks_processed_total{queue="backfill"}`, 0)
	if got[`asynq_queue_latency_seconds{queue="backfill"}`] < 0 {
		t.Fatal("negative queue latency")
	}
}

// fakeRuns serves a fixed list of runs the test edits between scrapes.
type fakeRuns struct {
	mu   sync.Mutex
	runs []*runstore.Run
	err  error
}

func (f *fakeRuns) List(_ context.Context, limit int) ([]*runstore.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make([]*runstore.Run, 0, min(limit, len(f.runs)))
	for _, r := range f.runs[:min(limit, len(f.runs))] {
		c := *r
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeRuns) set(runs ...*runstore.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = runs
}

func run(id string, st runstore.State, students runstore.Counters) *runstore.Run {
	return &runstore.Run{Meta: runstore.Meta{ID: id, Kind: runstore.KindBackfill}, State: st,
		Counters: map[string]runstore.Counters{"student": students}}
}

func TestRecordsCounterAddsOnlyGrowthSinceStartAndNeverShrinks(t *testing.T) {
	t.Parallel()
	runs := &fakeRuns{}
	old := run("r-old", runstore.Running, runstore.Counters{Read: 100, Written: 100, Created: 100})
	runs.set(old)
	url := serve(t, metrics.New(metrics.Config{Runs: runs, RecentRuns: 2}))

	got := scrape(t, url)
	requireAbsent(t, got, "backfill_records_total")

	old = run("r-old", runstore.Running, runstore.Counters{Read: 130, Written: 125, Created: 110, Updated: 15, Rejected: 5})
	fresh := run("r-new", runstore.Running, runstore.Counters{Read: 7, Written: 7, Created: 7})
	runs.set(fresh, old)
	got = scrape(t, url)
	requireValue(t, got, `backfill_records_total{object="student",outcome="read"}`, 37)
	requireValue(t, got, `backfill_records_total{object="student",outcome="written"}`, 32)
	requireValue(t, got, `backfill_records_total{object="student",outcome="updated"}`, 15)
	requireValue(t, got, `backfill_records_total{object="student",outcome="rejected"}`, 5)

	// Two newer runs push both out of the window: what they added stays counted.
	runs.set(run("r-3", runstore.Queued, runstore.Counters{}), run("r-4", runstore.Queued, runstore.Counters{}), fresh, old)
	got = scrape(t, url)
	requireValue(t, got, `backfill_records_total{object="student",outcome="read"}`, 37)
}

func TestRunSeriesCoverOnlyActiveRuns(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	checkpoint, started := now.Add(-42*time.Second), now.Add(-5*time.Minute)
	running := run("r-running", runstore.Running, runstore.Counters{})
	running.Progress = runstore.Progress{Done: 300, Total: 1200}
	running.StartedAt, running.CheckpointAt = &started, &checkpoint
	fresh := run("r-fresh", runstore.Running, runstore.Counters{})
	fresh.StartedAt = &started
	paused := run("r-paused", runstore.Paused, runstore.Counters{})
	paused.Kind = runstore.KindCatchup
	paused.Progress = runstore.Progress{Done: 5, Total: 10}
	done := run("r-done", runstore.Succeeded, runstore.Counters{})
	done.Progress = runstore.Progress{Done: 10, Total: 10}
	runs := &fakeRuns{}
	runs.set(running, fresh, paused, done)

	got := scrape(t, serve(t, metrics.New(metrics.Config{Runs: runs, Now: func() time.Time { return now }})))

	requireValue(t, got, `backfill_run_progress_done{kind="backfill",run="r-running"}`, 300)
	requireValue(t, got, `backfill_run_progress_total{kind="backfill",run="r-running"}`, 1200)
	requireValue(t, got, `backfill_run_checkpoint_age_seconds{kind="backfill",run="r-running"}`, 42)
	requireValue(t, got, `backfill_run_checkpoint_age_seconds{kind="backfill",run="r-fresh"}`, 300)
	requireValue(t, got, `backfill_run_progress_done{kind="catchup",run="r-paused"}`, 5)
	if _, ok := got[`backfill_run_checkpoint_age_seconds{kind="catchup",run="r-paused"}`]; ok {
		t.Fatal("a paused run has a checkpoint age; only running runs should, or every pause looks stuck")
	}
	for s := range got {
		if strings.Contains(s, `run="r-done"`) {
			t.Fatalf("finished run exported as %s: per-run series must stay bounded by the active runs", s)
		}
	}
	requireValue(t, got, `backfill_runs_active{state="running"}`, 2)
	requireValue(t, got, `backfill_runs_active{state="paused"}`, 1)
	requireValue(t, got, `backfill_runs_active{state="waiting_for_auth"}`, 0)
}

func TestRunStoreFailureHidesOnlyItsOwnSeries(t *testing.T) {
	t.Parallel()
	log := &logging.Buffer{}
	runs := &fakeRuns{err: errors.New("redis: connection refused")}
	m := metrics.New(metrics.Config{Runs: runs, Logger: zerolog.New(log)})
	m.Sink().ObserveUsage(10, 100)

	got := scrape(t, serve(t, m))

	requireValue(t, got, "backfill_salesforce_api_requests_remaining", 90)
	requireAbsent(t, got, "backfill_runs_active")
	if !strings.Contains(log.String(), "connection refused") {
		t.Fatalf("the scrape error was not logged; log: %s", log)
	}
}

func TestSourceObserverCountsSkilljarCallsAndRateLimitWaits(t *testing.T) {
	t.Parallel()
	sj, err := skilljarsim.Start(skilljarsim.Config{Seed: 3, Users: 5, Courses: 2}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sj.Close() })
	// One call per 50ms: every call after the first waits.
	limits, err := ratelimit.ParseLimits("1/50ms")
	if err != nil {
		t.Fatal(err)
	}
	limiter := ratelimit.New(redistest.Start(t).Client(t), "bf:ratelimit:test", limits, ratelimit.WithMargin(0))
	m := metrics.New(metrics.Config{})
	newClient := func(key string) *skilljar.Client {
		c, err := skilljar.New(skilljar.Config{BaseURL: sj.URL(), APIKey: key, MaxRetries: -1, Observer: m.Source(),
			Limiter: limiter})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := newClient(sj.APIKey())
	for range 3 {
		if _, err := good.Domains(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newClient("wrong-key").Domains(t.Context()); err == nil {
		t.Fatal("a wrong key listed the domains")
	}

	got := scrape(t, serve(t, m))

	requireValue(t, got, `backfill_skilljar_requests_total{endpoint="domains",status="200"}`, 3)
	requireValue(t, got, `backfill_skilljar_requests_total{endpoint="domains",status="401"}`, 1)
	requireValue(t, got, `backfill_skilljar_request_duration_seconds_count{endpoint="domains"}`, 4)
	requireValue(t, got, "backfill_skilljar_rate_limit_wait_seconds_count", 4)
	if w := got["backfill_skilljar_rate_limit_wait_seconds_sum"]; w <= 0 {
		t.Fatalf("rate-limit wait sum = %v, want the waits of the calls after the first", w)
	}
}

func TestSinkObserverCountsSalesforceCallsAndTheAPIBudget(t *testing.T) {
	t.Parallel()
	sf, err := salesforcesim.Start(salesforcesim.Config{DailyLimit: 5000}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sf.Close() })
	tok := sf.MintTokens("api refresh_token")
	m := metrics.New(metrics.Config{})
	url := serve(t, m)
	// Before any answer reported the budget it is unknown, not zero.
	requireAbsent(t, scrape(t, url), "backfill_salesforce_api_requests")
	c, err := salesforce.New(salesforce.Config{MaxRetries: -1, Observer: m.Sink(),
		Tokens: salesforce.StaticTokens(salesforce.Credentials{AccessToken: tok.AccessToken, InstanceURL: tok.InstanceURL})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Describe(t.Context(), "skilljar__Student__c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Describe(t.Context(), "No_Such_Object__c"); err == nil {
		t.Fatal("describing an unknown object succeeded")
	}
	used, limit, ok := c.Usage()
	if !ok {
		t.Fatal("the client saw no Sforce-Limit-Info")
	}

	got := scrape(t, url)

	requireValue(t, got, `backfill_salesforce_requests_total{endpoint="describe",status="200"}`, 1)
	requireValue(t, got, `backfill_salesforce_requests_total{endpoint="describe",status="404"}`, 1)
	requireValue(t, got, "backfill_salesforce_api_requests_used", float64(used))
	requireValue(t, got, "backfill_salesforce_api_requests_max", 5000)
	requireValue(t, got, "backfill_salesforce_api_requests_remaining", float64(limit-used))
}

// TestRecordsMatchARunsCountersThroughTheAPI mounts the metrics on the real API, behind its
// token, and checks the records series against what a real run counted.
func TestRecordsMatchARunsCountersThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 30, Mounts: func(d *httpapi.Deps) {
		d.Metrics = metrics.New(metrics.Config{Runs: d.Runs}).Handler()
	}})
	e.StartWorker(t)
	url := e.Server.URL + "/metrics"
	bearer := []string{"Authorization", "Bearer " + apitest.Token}

	if resp := e.DoRaw(t, http.MethodGet, "/metrics", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without the token: %d, want 401", resp.StatusCode)
	}
	scrape(t, url, bearer...) // the baseline: nothing has run yet

	r, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Kind: runstore.KindBackfill, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.Ctx, 45*time.Second)
	defer cancel()
	final, err := e.Engine.Watch(ctx, r.ID, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != runstore.Succeeded {
		t.Fatalf("run ended %s: %s", final.State, final.Error)
	}

	got := scrape(t, url, bearer...)
	for object, c := range final.Counters {
		requireValue(t, got, fmt.Sprintf(`backfill_records_total{object=%q,outcome="read"}`, object), float64(c.Read))
		requireValue(t, got, fmt.Sprintf(`backfill_records_total{object=%q,outcome="written"}`, object), float64(c.Written))
	}
	if len(final.Counters) == 0 {
		t.Fatal("the run counted nothing")
	}
	requireValue(t, got, `backfill_runs_active{state="running"}`, 0)
}
