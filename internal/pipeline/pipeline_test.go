package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func TestFullRunEndsWithSalesforceEqualToTheSourceInEverySinkMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{runstore.SinkAuto, runstore.SinkCollections, runstore.SinkBulk} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := setup(t, options{})
			e.startWorker(t)
			run := e.start(t, runstore.Scope{SinkMode: mode})
			run = e.wait(t, run.ID, 60*time.Second)
			e.requireExact(t, run)
			if n := simcheck.Replays(e.sf); n != 0 {
				t.Errorf("an undisturbed run wrote %d records twice", n)
			}
		})
	}
}

// crashingSink accepts an upsert in Salesforce and then reports failure, as a worker that
// died between Salesforce's answer and its checkpoint would.
type crashingSink struct {
	pipeline.Sink
	mu      sync.Mutex
	calls   int
	crashAt map[int]bool
}

func (c *crashingSink) Upsert(ctx context.Context, sobject, ext string, recs []salesforce.Record) ([]salesforce.Result, error) {
	res, err := c.Sink.Upsert(ctx, sobject, ext, recs)
	c.mu.Lock()
	c.calls++
	crash := c.crashAt[c.calls]
	c.mu.Unlock()
	if err == nil && crash {
		return nil, errors.New("worker lost before the checkpoint")
	}
	return res, err
}

func TestACrashAfterAnUpsertAndBeforeItsCheckpointReplaysOneBatchWithoutDuplicates(t *testing.T) {
	t.Parallel()
	sink := &crashingSink{crashAt: map[int]bool{3: true, 9: true}}
	e := setup(t, options{wrapSink: func(s pipeline.Sink) pipeline.Sink { sink.Sink = s; return sink }})
	e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	run = e.wait(t, run.ID, 90*time.Second)
	e.requireExact(t, run)
	n := simcheck.Replays(e.sf)
	if n == 0 || n > 2*200 {
		t.Fatalf("two crashes replayed %d record writes; want some, at most one batch (200) each", n)
	}
}

func TestGracefulShutdownMidSliceSavesTheCheckpointAndTheNextWorkerContinuesFromIt(t *testing.T) {
	t.Parallel()
	e := setup(t, options{
		skilljar: skilljarsim.Config{Users: 300, Latency: 2 * time.Millisecond},
		pipeline: pipeline.Config{SliceDuration: time.Hour, ProgressConcurrency: 2},
	})
	stopA := e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	e.waitFor(t, run.ID, 30*time.Second, "a third of the learners done", func(r *runstore.Run) bool {
		return r.Progress.Total > 0 && r.Progress.Done*3 > r.Progress.Total
	})
	stopA()
	paused, err := e.store.Get(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if paused.State != runstore.Running || paused.Progress.Done == 0 || paused.Progress.Done >= paused.Progress.Total {
		t.Fatalf("after a graceful stop mid-run: state %s progress %+v", paused.State, paused.Progress)
	}
	writesBefore := len(e.sf.WriteLog())
	e.startWorker(t)
	run = e.wait(t, run.ID, 60*time.Second)
	e.requireExact(t, run)
	if n := simcheck.Replays(e.sf); n != 0 {
		t.Fatalf("the second worker rewrote %d records the first had committed; a graceful stop must lose nothing", n)
	}
	if len(e.sf.WriteLog()) <= writesBefore {
		t.Fatal("the second worker wrote nothing")
	}
}

func TestRateLimitsFaultsLockStormsAndLatencyStillEndExact(t *testing.T) {
	t.Parallel()
	e := setup(t, options{
		skilljar: skilljarsim.Config{
			Users: 150, Latency: time.Millisecond, Jitter: 2 * time.Millisecond,
			FaultRate: 0.05, GarbleRate: 0.03,
			// 100 a "minute" at 20×: 33 calls a second, which 8 unpaced fetchers outrun even on a
			// loaded machine, so 429 bursts are certain.
			PerMinute: 100, TimeScale: 20,
		},
		salesforce: salesforcesim.Config{FaultRate: 0.05, LockRate: 0.05, Latency: time.Millisecond},
		pipeline:   pipeline.Config{ProgressConcurrency: 8},
	})
	e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	run = e.wait(t, run.ID, 120*time.Second)
	e.requireExact(t, run)
	throttled := 0
	for _, c := range e.sj.Calls() {
		if c.Status == 429 {
			throttled += c.Count
		}
	}
	if throttled == 0 {
		t.Fatal("the test meant to provoke 429s but the simulator answered none")
	}
}

func TestAMalformedSourcePageFailsTheRunNamingThePageAndAResumeFinishesExact(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 150}})
	domain := e.sj.Org().Domains[1].Name
	// Every read of that domain's learners list arrives garbled, more times than the client retries.
	e.sj.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/domains/" + domain + "/users", Kind: skilljarsim.FaultGarbled, Times: 12})
	e.startWorker(t)
	run := e.start(t, runstore.Scope{})
	run = e.wait(t, run.ID, 60*time.Second)
	if run.State != runstore.Failed || !strings.Contains(run.Error, "/v1/domains/"+domain+"/users") || !strings.Contains(run.Error, "malformed") {
		t.Fatalf("run ended %s with %q; want failed naming the page", run.State, run.Error)
	}
	var failedStream runstore.StreamStatus
	for _, st := range run.Streams {
		if st.Domain == domain && st.Kind == "learners" {
			failedStream = st
		}
	}
	if failedStream.Done {
		t.Fatal("the failed stream must not be marked done")
	}
	if _, err := e.engine.Resume(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	run = e.wait(t, run.ID, 60*time.Second)
	e.requireExact(t, run)
}

func TestPreflightFailureListsEveryProblemAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	e.sf.SetFieldAccess("skilljar__Student__c", "skilljar__Email__c", false, true)
	e.sf.SetFieldAccess("skilljar__Course_Progress__c", "skilljar__Score__c", false, false)
	e.startWorker(t)
	run := e.start(t, runstore.Scope{})
	run = e.wait(t, run.ID, 30*time.Second)
	if run.State != runstore.Failed {
		t.Fatalf("state %s, want failed", run.State)
	}
	for _, want := range []string{"skilljar__Student__c.skilljar__Email__c", "skilljar__Course_Progress__c.skilljar__Score__c", "nothing was written"} {
		if !strings.Contains(run.Error, want) {
			t.Errorf("error lacks %q: %s", want, run.Error)
		}
	}
	if n := len(e.sf.WriteLog()); n != 0 {
		t.Fatalf("preflight failed but %d records were written", n)
	}
}

func TestDomainFilterWritesOnlyThatDomainsRecordsAndCountsTheRestFiltered(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 200}})
	domain := e.sj.Org().Domains[0].Name
	e.startWorker(t)
	run := e.start(t, runstore.Scope{Domains: []string{domain}})
	run = e.wait(t, run.ID, 60*time.Second)
	e.requireExact(t, run, domain)
	if run.Counters["course_progress"].Filtered == 0 {
		t.Fatal("learners of the domain also have progress in other domains; those rows must be counted as filtered")
	}
}

func TestDryRunReadsAndMapsEverythingWritesNothingAndKeepsSamples(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	e.startWorker(t)
	run := e.start(t, runstore.Scope{DryRun: true})
	run = e.wait(t, run.ID, 60*time.Second)
	if run.State != runstore.Succeeded || run.Summary == nil || run.Summary.Verdict != "dry_run" {
		t.Fatalf("dry run ended %s with summary %+v", run.State, run.Summary)
	}
	if n := len(e.sf.WriteLog()); n != 0 {
		t.Fatalf("a dry run wrote %d records", n)
	}
	org := e.sj.Org()
	if got := run.Counters["student"].Read; got != int64(len(org.Learners))+dupMemberships(org) {
		t.Errorf("students read %d, want every membership: %d", got, int64(len(org.Learners))+dupMemberships(org))
	}
	for obj, c := range run.Counters {
		if !c.Balanced() || c.Written != 0 || c.Skipped == 0 {
			t.Errorf("%s dry-run counters %+v: want everything skipped, nothing written", obj, c)
		}
	}
	samples, err := e.store.Samples(e.ctx, run.ID)
	if err != nil || len(samples) == 0 {
		t.Fatalf("samples %v, %v", samples, err)
	}
	if !strings.Contains(string(samples[0].Row), "skilljar__Obfuscated_Id__c") {
		t.Fatalf("a sample is a mapped row; got %s", samples[0].Row)
	}
}

// settledWrites waits until Salesforce has taken no write for half a second and returns how
// many it has taken; it fails the test if writes go on for 15 seconds.
func settledWrites(t *testing.T, e *env) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := len(e.sf.WriteLog())
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		n := len(e.sf.WriteLog())
		if n == last {
			return n
		}
		last = n
	}
	t.Fatalf("writes never stopped: %d and counting", last)
	return last
}

// dupMemberships counts learner memberships beyond each learner's first domain.
func dupMemberships(org skilljarsim.Org) int64 {
	var n int64
	for _, l := range org.Learners {
		if len(l.Memberships) > 1 {
			n += int64(len(l.Memberships) - 1)
		}
	}
	return n
}

func TestPauseStopsAfterTheBatchInHandResumeContinuesAndCancelEnds(t *testing.T) {
	t.Parallel()
	e := setup(t, options{
		skilljar: skilljarsim.Config{Users: 300, Latency: 3 * time.Millisecond},
		pipeline: pipeline.Config{ProgressConcurrency: 1},
	})
	e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	e.waitFor(t, run.ID, 30*time.Second, "learners in progress", func(r *runstore.Run) bool { return r.Progress.Done > 10 })
	atPause := len(e.sf.WriteLog())
	if _, err := e.engine.Pause(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	// The batch in hand, one collections call, may still land; then nothing more.
	if n := settledWrites(t, e) - atPause; n > 200 {
		t.Fatalf("a paused run wrote %d records after the pause; at most the batch in hand (200) may land", n)
	}
	paused, _ := e.store.Get(e.ctx, run.ID)
	if paused.State != runstore.Paused || paused.Progress.Done >= paused.Progress.Total {
		t.Fatalf("paused run: %s %+v", paused.State, paused.Progress)
	}
	if _, err := e.engine.Resume(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, run.ID, 30*time.Second, "more learners after the resume", func(r *runstore.Run) bool { return r.Progress.Done > paused.Progress.Done })
	if _, err := e.engine.Cancel(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	atCancel := len(e.sf.WriteLog())
	run = e.wait(t, run.ID, 10*time.Second)
	if run.State != runstore.Cancelled {
		t.Fatalf("state %s, want cancelled", run.State)
	}
	if n := settledWrites(t, e) - atCancel; n > 200 {
		t.Fatalf("a cancelled run wrote %d records after the cancel; at most the batch in hand (200) may land", n)
	}
	if _, err := e.engine.Resume(e.ctx, run.ID); !errors.Is(err, runstore.ErrBadTransition) {
		t.Fatalf("resume of a cancelled run: %v, want ErrBadTransition", err)
	}
}

func TestRejectedRecordsLandInTheLedgerAndARetryRunDrivesThemIn(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	org := e.sj.Org()
	victims := map[string]string{
		"skilljar__Student__c":         org.Learners[3].ID,
		"skilljar__Course_Progress__c": org.Progress[5].CourseProgressID,
	}
	for sobject, id := range victims {
		e.sf.InjectRecordError(sobject, id, "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1)
	}
	e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	run = e.wait(t, run.ID, 60*time.Second)
	if run.State != runstore.Succeeded || run.Summary.Verdict != "mismatch" {
		t.Fatalf("run with rejects: %s, summary %+v", run.State, run.Summary)
	}
	ledger, total, err := e.store.RejectedPage(e.ctx, run.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if total < 2 || ledger[0].Code == "" || len(ledger[0].Row) == 0 {
		t.Fatalf("ledger: %d rows %+v", total, ledger)
	}
	for _, r := range ledger {
		if r.Object == "student" && r.ExternalID == victims["skilljar__Student__c"] && r.Code != "FIELD_CUSTOM_VALIDATION_EXCEPTION" {
			t.Fatalf("ledger row for the rejected student: %+v", r)
		}
	}
	if c := run.Counters["student"]; c.Rejected != 1 || !c.Balanced() {
		t.Fatalf("student counters %+v, want exactly one rejected", c)
	}

	retry, err := e.engine.RetryRejected(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	retry = e.wait(t, retry.ID, 60*time.Second)
	if retry.Kind != runstore.KindRedrive || retry.Parent != run.ID {
		t.Fatalf("retry run %+v", retry.Meta)
	}
	if rep := simcheck.Compare(e.sj.Org(), e.sf); !rep.Exact() {
		t.Fatalf("after the retry Salesforce still differs:\n%s", rep)
	}
	if got := retry.Total(); got.Rejected != 0 || got.Written != total {
		t.Fatalf("retry counters %+v; want all %d ledger rows written", got, total)
	}
}

func TestEveryLogLineOfAStreamCarriesTheRunStreamTaskAndPage(t *testing.T) {
	t.Parallel()
	var logs logging.Buffer
	e := setup(t, options{logTo: &logs})
	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{}).ID, 60*time.Second)
	e.requireExact(t, run)
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["stream"] == nil {
			continue // run-level lines: queued, preflight
		}
		lines++
		for _, k := range []string{"run_id", "task_id", "page"} {
			if entry[k] == nil {
				t.Fatalf("stream log line without %s: %s", k, line)
			}
		}
	}
	if lines == 0 {
		t.Fatal("no stream log lines at debug level: the test proves nothing")
	}
}
