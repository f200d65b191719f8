package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func TestAWorkerKilledWithSIGKILLMidRunLosesAtMostOneBatchAndTheRunEndsExact(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 600, Seed: 3}, salesforcesim.Config{})
	// 60 Skilljar calls a second: slow enough to kill the worker mid-run.
	// Long slices: the kill lands inside an active task that never hands over, so the run
	// goes on only once the next worker takes it over when its lease lapses (asynq's own
	// lease recovery would take a minute or more).
	env := s.env("SKILLJAR_RATE_LIMIT=60/1s", "BACKFILL_SLICE_SECONDS=600")
	first := startProcess(t, env, "worker")
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, run.ID, 60*time.Second, "a third of the learners done", func(r *runstore.Run) bool {
		return r.Progress.Total > 0 && r.Progress.Done*3 >= r.Progress.Total
	})
	first.signal(t, syscall.SIGKILL)
	killed := time.Now()
	first.wait(t, 10*time.Second)
	killedAt, _ := s.Store.Get(s.Ctx, run.ID)

	startProcess(t, env, "worker")
	s.WaitFor(t, run.ID, 4*time.Minute, "a commit after the kill", func(r *runstore.Run) bool { return r.Progress.Done > killedAt.Progress.Done })
	t.Logf("stall after SIGKILL (from the kill to the run's next commit): %s", time.Since(killed).Round(100*time.Millisecond))
	run = s.WaitFor(t, run.ID, 4*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(t, run)
	if run.Progress.Done <= killedAt.Progress.Done {
		t.Fatalf("no progress after the kill: %d then %d", killedAt.Progress.Done, run.Progress.Done)
	}
	// Only the learners stream was in flight; one collections batch is 200 rows.
	if n := simcheck.Replays(s.Salesforce); n > 200 {
		t.Fatalf("the kill replayed %d record writes; at most one batch (200) may be", n)
	} else {
		t.Logf("records written twice after SIGKILL: %d (one batch at most: 200)", n)
	}
}

func TestWorkerStopsGracefullyOnSIGTERMAndAnotherFinishesTheRunFromItsCheckpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 400, Seed: 4}, salesforcesim.Config{})
	env := s.env("SKILLJAR_RATE_LIMIT=80/1s")
	first := startProcess(t, env, "worker")
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, run.ID, 60*time.Second, "a quarter of the learners done", func(r *runstore.Run) bool {
		return r.Progress.Total > 0 && r.Progress.Done*4 >= r.Progress.Total
	})
	first.signal(t, syscall.SIGTERM)
	if code := first.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("worker exit status %d after SIGTERM, want 0", code)
	}
	startProcess(t, env, "worker")
	run = s.WaitFor(t, run.ID, 60*time.Second, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(t, run)
	if n := simcheck.Replays(s.Salesforce); n != 0 {
		t.Fatalf("a graceful stop replayed %d record writes; it must save the batch in hand", n)
	}
}
