package pipeline_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func progressCalls(sj *skilljarsim.Sim) int {
	return sj.CallCount("GET /v1/users/{id}/published-courses")
}

func TestCatchupReadsOnlyChangedLearnersAndWritesOnlyChangedRows(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 300}})
	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{}).ID, 60*time.Second)
	e.requireExact(t, run)
	backfillCalls := e.sj.TotalCalls()
	writesBefore := len(e.sf.WriteLog())

	changed := e.sj.ChangeLearners(0.03)
	callsBefore, progressBefore := e.sj.TotalCalls(), progressCalls(e.sj)
	catchup, err := e.engine.StartCatchup(e.ctx, runstore.Scope{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	catchup = e.wait(t, catchup.ID, 60*time.Second)
	if catchup.State != runstore.Succeeded || catchup.Summary.Verdict != "complete" {
		t.Fatalf("catch-up ended %s with %+v", catchup.State, catchup.Summary)
	}
	e.requireExactData(t)

	if got := progressCalls(e.sj) - progressBefore; got != len(changed) {
		t.Errorf("catch-up read the progress of %d learners; %d changed", got, len(changed))
	}
	// Beyond the changed learners, a catch-up reads only list pages (overview twice, courses,
	// published courses); the share of the backfill's calls is measured at scale by the
	// benchmark.
	calls := e.sj.TotalCalls() - callsBefore
	if extra := calls - len(changed); extra > 8 {
		t.Errorf("catch-up made %d Skilljar calls beyond the %d changed learners' progress", extra, len(changed))
	}
	t.Logf("backfill %d Skilljar calls, catch-up %d (%.2f%%) for %d changed learners", backfillCalls, calls, 100*float64(calls)/float64(backfillCalls), len(changed))

	p := catchup.Counters["course_progress"]
	writes := len(e.sf.WriteLog()) - writesBefore
	if s := catchup.Counters["student"]; s.Written != 0 || s.Unchanged != int64(len(changed)) {
		t.Errorf("students %+v: the changed learners' names did not change, so none should be written", s)
	}
	if p.Written == 0 || p.Unchanged == 0 || int64(writes) != p.Written {
		t.Errorf("progress %+v, %d writes: want only the changed rows written and the rest skipped as unchanged", p, writes)
	}
	if p.Written > int64(3*len(changed)) {
		t.Errorf("%d progress rows written for %d changed learners: unchanged rows were rewritten", p.Written, len(changed))
	}

	// Nothing changed since: the next catch-up reads no progress and writes nothing.
	progressBefore, writesBefore = progressCalls(e.sj), len(e.sf.WriteLog())
	quiet, err := e.engine.StartCatchup(e.ctx, runstore.Scope{}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.wait(t, quiet.ID, 60*time.Second)
	if n := progressCalls(e.sj) - progressBefore; n != 0 {
		t.Errorf("a quiet catch-up read %d learners' progress", n)
	}
	if n := len(e.sf.WriteLog()) - writesBefore; n != 0 {
		t.Errorf("a quiet catch-up wrote %d records", n)
	}
}

func TestBackfillThenCatchupEndExactWhileLearnersAndCompletionsKeepArriving(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 200, Latency: time.Millisecond}})
	e.startWorker(t)
	stopLive := e.sj.StartLive(40)
	run := e.wait(t, e.start(t, runstore.Scope{}).ID, 60*time.Second)
	if run.State != runstore.Succeeded {
		t.Fatalf("backfill ended %s: %s", run.State, run.Error)
	}
	catchup, err := e.engine.StartCatchup(e.ctx, runstore.Scope{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Changes keep landing while the catch-up's first pass works, then stop; the second
	// pass finds what the first could not see.
	e.waitFor(t, catchup.ID, 30*time.Second, "the first pass's snapshot", func(r *runstore.Run) bool {
		return len(r.Streams) > 0 && r.Streams[0].Done
	})
	stopLive()
	catchup = e.wait(t, catchup.ID, 60*time.Second)
	if catchup.State != runstore.Succeeded {
		t.Fatalf("catch-up ended %s: %s", catchup.State, catchup.Error)
	}
	e.requireExactData(t)
}

func TestATickWhileARunOfTheSameScopeIsActiveIsSkippedWithAnEvent(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 200, Latency: 5 * time.Millisecond}})
	run := e.start(t, runstore.Scope{}) // no worker: it stays queued, so active
	tick := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	_, err := e.engine.StartCatchup(e.ctx, runstore.Scope{}, tick)
	var conflict *runstore.ConflictError
	if !errors.As(err, &conflict) || conflict.ActiveID != run.ID {
		t.Fatalf("tick during an active run: %v", err)
	}
	events, _ := e.store.Events(e.ctx, run.ID, 10)
	found := false
	for _, ev := range events {
		found = found || (ev.Kind == "catchup_skipped" && ev.Message != "")
	}
	if !found {
		t.Fatalf("no skip event on the active run: %+v", events)
	}
}

func TestCatchupWithADomainFilterWritesOnlyThatDomainsChanges(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 300}})
	domain := e.sj.Org().Domains[1].Name
	scope := runstore.Scope{Domains: []string{domain}}
	e.startWorker(t)
	run := e.wait(t, e.start(t, scope).ID, 60*time.Second)
	e.requireExact(t, run, domain)

	e.sj.ChangeLearners(0.1)
	e.sj.AddLearner(e.sj.Org().Domains[0].Name) // outside the filter: must stay out
	e.sj.AddLearner(domain)                     // inside: must arrive
	catchup, err := e.engine.StartCatchup(e.ctx, scope, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	catchup = e.wait(t, catchup.ID, 60*time.Second)
	if catchup.State != runstore.Succeeded {
		t.Fatalf("catch-up ended %s: %s", catchup.State, catchup.Error)
	}
	e.requireExactData(t, domain)
	if catchup.Counters["student"].Filtered == 0 {
		t.Error("changed learners outside the domain must be counted as filtered")
	}
}
