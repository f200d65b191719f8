package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// BenchmarkWebhookFreshness measures, with the api and worker processes against both
// simulators:
//
//   - freshness: from a completion in Skilljar to its row in Salesforce, at the default
//     Skilljar budget (600/min, 5,000/h) and debounce, while a full backfill of the same
//     org runs at the same time and spends that budget;
//   - a burst of 10,000 deliveries for 2,000 learners at a larger budget: learners lost,
//     Skilljar calls per distinct learner, 429s, and how long the queue took to drain.
func BenchmarkWebhookFreshness(b *testing.B) {
	const users, changes = 2000, 30
	// The simulator's own limit sits just above the burst budget, so any call past the
	// engine's shared limiter shows as a 429.
	// (PerMinute counts per scaled minute: 2,400 a second.)
	s := newStack(b, skilljarsim.Config{Users: users, Seed: 41, PerMinute: 2400, TimeScale: 60}, salesforcesim.Config{})
	defaults := []string{"SKILLJAR_RATE_LIMIT=600/1m,5000/1h", "BACKFILL_WEBHOOK_DEBOUNCE_MS=1000", "BACKFILL_SLICE_SECONDS=60", "LOG_LEVEL=warn"}
	_, base := s.startWebhookAPI(b, defaults...)
	first := startProcess(b, webhookEnv(s, base, "SKILLJAR_RATE_LIMIT=1000000/1s", "LOG_LEVEL=warn"), "worker")
	s.backfillFirst(b)
	first.signal(b, syscall.SIGTERM)
	first.wait(b, time.Minute)
	if code, out := s.cli(b, base, 30*time.Second, "webhooks", "install"); code != 0 {
		b.Fatalf("webhooks install (%d):\n%s", code, out)
	}

	worker := startProcess(b, webhookEnv(s, base, defaults...), "worker")
	backfill, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		b.Fatal(err)
	}
	s.WaitFor(b, backfill.ID, time.Minute, "the concurrent backfill to read learners", func(r *runstore.Run) bool { return r.Progress.Done > 0 })

	calls0, _ := skilljarCalls(s.Skilljar)
	lookups0 := s.Skilljar.CallCount("GET /v1/users/{id}")
	window := time.Now()
	lags := freshness(b, s, changes)
	calls, _ := skilljarCalls(s.Skilljar)
	// Each change costs the live run a lookup and a progress read; the rest is the backfill.
	live := 2 * (s.Skilljar.CallCount("GET /v1/users/{id}") - lookups0)
	b.ReportMetric(float64(calls-calls0)/time.Since(window).Seconds(), "fresh_window_calls/s")
	b.ReportMetric(float64(live)/float64(calls-calls0), "fresh_live_share_of_calls")
	if run, _ := s.Store.Get(s.Ctx, backfill.ID); run.State.Terminal() {
		b.Fatalf("the backfill ended (%s) before the changes were measured: the figures are not under load", run.State)
	}
	slices.Sort(lags)
	pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))].Seconds() }
	b.ReportMetric(pct(0.50), "fresh_p50_s")
	b.ReportMetric(pct(0.95), "fresh_p95_s")
	b.ReportMetric(lags[len(lags)-1].Seconds(), "fresh_max_s")
	if _, err := s.Engine.Cancel(s.Ctx, backfill.ID); err != nil {
		b.Fatal(err)
	}
	worker.signal(b, syscall.SIGTERM)
	worker.wait(b, 2*time.Minute)

	startProcess(b, webhookEnv(s, base, "SKILLJAR_RATE_LIMIT=2000/1s", "BACKFILL_WEBHOOK_SHARE=1", "LOG_LEVEL=warn"), "worker")
	burst(b, s, base, users, 10000)
}

// freshness completes n open course progresses, one a second, and returns how long each
// took to show as completed in Salesforce.
func freshness(b *testing.B, s *stack, n int) []time.Duration {
	var open []skilljarsim.Progress
	for _, p := range s.Skilljar.Org().Progress {
		if !p.Completed() {
			open = append(open, p)
		}
	}
	rand.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
	if len(open) < n {
		b.Fatalf("only %d open course progresses", len(open))
	}
	type change struct {
		id    string
		at    time.Time
		taken time.Duration
	}
	changes := make([]*change, n)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Duration(n)*time.Second + 3*time.Minute)
		for time.Now().Before(deadline) {
			left := 0
			mu.Lock()
			for _, c := range changes {
				if c == nil {
					left++
					continue
				}
				if c.taken > 0 {
					continue
				}
				rec, ok := s.Salesforce.RecordByExternalID("skilljar__Course_Progress__c", "skilljar__Obfuscated_Id__c", c.id)
				if ok && rec["skilljar__Completed_At__c"] != nil {
					c.taken = time.Since(c.at)
				} else {
					left++
				}
			}
			mu.Unlock()
			if left == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for i := range n {
		at := time.Now()
		s.Skilljar.Complete(open[i].CourseProgressID, true, 90)
		mu.Lock()
		changes[i] = &change{id: open[i].CourseProgressID, at: at}
		mu.Unlock()
		time.Sleep(time.Second)
	}
	<-done
	lags := make([]time.Duration, 0, n)
	for _, c := range changes {
		if c.taken == 0 {
			b.Fatalf("the completion of %s never reached Salesforce", c.id)
		}
		lags = append(lags, c.taken)
	}
	return lags
}

// burst posts deliveries for every learner, round robin, as fast as eight senders go, and
// reports what it cost once the queue is drained.
func burst(b *testing.B, s *stack, base string, users, deliveries int) {
	creds, err := s.webhookStore(b).Credentials(s.Ctx)
	if err != nil {
		b.Fatal(err)
	}
	learners := s.Skilljar.Org().Learners[:users]
	calls := func() (lookups, progress, limited int) {
		for _, c := range s.Skilljar.Calls() {
			switch {
			case c.Status == http.StatusTooManyRequests:
				limited += c.Count
			case c.Endpoint == "GET /v1/users/{id}":
				lookups += c.Count
			case c.Endpoint == "GET /v1/users/{id}/published-courses":
				progress += c.Count
			}
		}
		return lookups, progress, limited
	}
	lookups0, progress0, limited0 := calls()
	before := map[string]bool{}
	for _, r := range liveRuns(b, s) {
		before[r.ID] = true
	}
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := fmt.Sprintf(`{"type":"LESSON_COMPLETION","id":"burst%d","user":{"id":%q}}`, i, learners[i%users].ID)
				req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/skilljar", strings.NewReader(body))
				req.SetBasicAuth(creds.Username, creds.Password)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("delivery %d got %d", i, resp.StatusCode)
				}
			}
		}()
	}
	for i := range deliveries {
		next <- i
	}
	close(next)
	wg.Wait()
	sent := time.Since(start)
	var read int64
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		st, err := s.webhookStore(b).Stats(s.Ctx)
		if err != nil {
			b.Fatal(err)
		}
		active, runs := false, 0
		read = 0
		for _, r := range liveRuns(b, s) {
			if before[r.ID] {
				continue
			}
			runs++
			active = active || !r.State.Terminal()
			read += r.Counters["student"].Read
		}
		if st.Pending == 0 && !active && runs > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the burst was not drained in 10 minutes: %d pending", st.Pending)
		}
	}
	drained := time.Since(start)
	lookups, progress, limited := calls()
	b.ReportMetric(float64(users)-float64(min(read, int64(users))), "burst_learners_lost")
	b.ReportMetric(float64(read), "burst_learners_written")
	b.ReportMetric(float64(lookups-lookups0)/float64(users), "burst_lookups/learner")
	b.ReportMetric(float64(progress-progress0)/float64(users), "burst_progress_reads/learner")
	b.ReportMetric(float64(limited-limited0), "burst_429s")
	b.ReportMetric(sent.Seconds(), "burst_send_s")
	b.ReportMetric(drained.Seconds(), "burst_drain_s")
}
