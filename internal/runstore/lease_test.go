package runstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// leaseStores are two stores on one Redis: short's leases lapse within milliseconds (a holder
// that died), long's outlive the test (a holder that renews).
type leaseStores struct {
	ctx         context.Context
	short, long *runstore.Store
}

// shortLease is how long short's leases last; lapsed waits well past it.
const shortLease = 5 * time.Millisecond

func setupLeases(t *testing.T) *leaseStores {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ls := &leaseStores{ctx: context.Background(),
		short: runstore.New(rdb, runstore.Options{Lease: shortLease}),
		long:  runstore.New(rdb, runstore.Options{Lease: time.Hour})}
	if _, _, err := ls.long.Create(ls.ctx, runstore.Meta{ID: "r1", Kind: runstore.KindCatchup}, ""); err != nil {
		t.Fatal(err)
	}
	return ls
}

// lapsed waits until every short lease has expired in Redis.
func lapsed() { time.Sleep(20 * shortLease) }

func (ls *leaseStores) held(t *testing.T) []string {
	t.Helper()
	ids, err := ls.long.Held(ls.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (ls *leaseStores) takeOver(t *testing.T) (runstore.Takeover, bool) {
	t.Helper()
	to, ok, err := ls.long.TakeOver(ls.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	return to, ok
}

func TestClaimHoldsTheRunUnderALeaseAndReleaseGivesItBack(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	fence, err := ls.long.Claim(ls.ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ls.held(t); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("held after claim: %v, want [r1]", got)
	}
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a run under a live lease was taken over")
	}
	if err := ls.long.Release(ls.ctx, "r1", fence-1); err != nil {
		t.Fatal(err)
	}
	if got := ls.held(t); len(got) != 1 {
		t.Fatalf("a release under an old fence let the run go: held %v", got)
	}
	if err := ls.long.Release(ls.ctx, "r1", fence); err != nil {
		t.Fatal(err)
	}
	if got := ls.held(t); len(got) != 0 {
		t.Fatalf("held after release: %v, want none", got)
	}
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a released run (its retry is asynq's to schedule) was taken over")
	}
}

func TestALapsedLeaseIsTakenOverExactlyOnceAndTheDeadHolderIsFenced(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	dead, err := ls.short.Claim(ls.ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	lapsed()

	const sweepers = 8
	var wg sync.WaitGroup
	wins := make(chan runstore.Takeover, sweepers)
	for range sweepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if to, ok, err := ls.long.TakeOver(ls.ctx, "r1"); err != nil {
				t.Error(err)
			} else if ok {
				wins <- to
			}
		}()
	}
	wg.Wait()
	close(wins)
	var won []runstore.Takeover
	for to := range wins {
		won = append(won, to)
	}
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent sweepers took the run over, want exactly 1: %+v", len(won), sweepers, won)
	}
	to := won[0]
	if to.Seq != 1 || to.Fence <= dead || to.Kind != runstore.KindCatchup {
		t.Fatalf("take-over %+v, want seq 1, a fence past %d and kind catchup", to, dead)
	}
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a run taken over was taken over again before its continuation was enqueued")
	}

	// The dead holder's late writes are refused, and its task, when asynq recovers it, is stale.
	if _, err := ls.long.Commit(ls.ctx, "r1", dead, runstore.Commit{Stream: -1}); !errors.Is(err, runstore.ErrFenced) {
		t.Fatalf("commit by the dead holder: got %v, want ErrFenced", err)
	}
	if err := ls.long.Renew(ls.ctx, "r1", dead); !errors.Is(err, runstore.ErrFenced) {
		t.Fatalf("renewal by the dead holder: got %v, want ErrFenced", err)
	}
	if _, err := ls.long.Claim(ls.ctx, "r1", 0); !errors.Is(err, runstore.ErrStale) {
		t.Fatalf("claim by the dead holder's recovered task: got %v, want ErrStale", err)
	}
	if err := ls.long.Release(ls.ctx, "r1", dead); err != nil {
		t.Fatal(err)
	}
	if got := ls.held(t); len(got) != 1 {
		t.Fatalf("the dead holder's release let the taken-over run go: held %v", got)
	}

	// The continuation's claim holds the run anew.
	next, err := ls.long.Claim(ls.ctx, "r1", to.Seq)
	if err != nil || next <= to.Fence {
		t.Fatalf("claim of the continuation: fence %d err %v, want a fence past %d", next, err, to.Fence)
	}
	if err := ls.long.Release(ls.ctx, "r1", to.Fence); err != nil {
		t.Fatal(err)
	}
	if got := ls.held(t); len(got) != 1 {
		t.Fatalf("the taker's release after the continuation claimed let the run go: held %v", got)
	}
}

func TestATakerThatDiesBeforeEnqueueingLeavesTheRunToTheNextSweep(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	if _, err := ls.short.Claim(ls.ctx, "r1", 0); err != nil {
		t.Fatal(err)
	}
	lapsed()
	first, ok, err := ls.short.TakeOver(ls.ctx, "r1")
	if err != nil || !ok {
		t.Fatalf("first take-over: ok %v err %v", ok, err)
	}
	lapsed()
	second, ok := ls.takeOver(t)
	if !ok || second.Seq != first.Seq+1 || second.Fence <= first.Fence {
		t.Fatalf("second take-over %+v ok %v, want the one after %+v", second, ok, first)
	}
}

func TestAQueuedContinuationIsNotTakenOver(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	fence, err := ls.short.Claim(ls.ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Hand-over done, the slice returned; its continuation waits for a free worker.
	if err := ls.short.HandOver(ls.ctx, "r1", fence, 0); err != nil {
		t.Fatal(err)
	}
	if err := ls.short.Release(ls.ctx, "r1", fence); err != nil {
		t.Fatal(err)
	}
	lapsed()
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a queued continuation was taken over")
	}
	if run, _ := ls.long.Get(ls.ctx, "r1"); run.Seq != 1 {
		t.Fatalf("seq %d after a refused take-over, want 1", run.Seq)
	}
}

func TestARenewalKeepsTheRunEvenAfterItsLeaseLapsedUnlessItWasTakenOver(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	fence, err := ls.short.Claim(ls.ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	lapsed()
	// A holder that was slow to renew but still holds the fence gets its lease back.
	if err := ls.long.Renew(ls.ctx, "r1", fence); err != nil {
		t.Fatal(err)
	}
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a renewed lease was taken over")
	}
}

func TestAHeldRunThatStoppedRunningLeavesTheIndexInsteadOfBeingTakenOver(t *testing.T) {
	t.Parallel()
	ls := setupLeases(t)
	if _, err := ls.short.Claim(ls.ctx, "r1", 0); err != nil {
		t.Fatal(err)
	}
	// Paused while its holder was dead: a resume enqueues the run's slice itself.
	if _, _, err := ls.long.Transition(ls.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Running}, To: runstore.Paused}); err != nil {
		t.Fatal(err)
	}
	lapsed()
	if _, ok := ls.takeOver(t); ok {
		t.Fatal("a paused run was taken over")
	}
	if got := ls.held(t); len(got) != 0 {
		t.Fatalf("held after the sweep of a paused run: %v, want none", got)
	}
	if run, _ := ls.long.Get(ls.ctx, "r1"); run.Seq != 0 || run.State != runstore.Paused {
		t.Fatalf("run after the sweep: seq %d state %s, want seq 0 paused", run.Seq, run.State)
	}
}
