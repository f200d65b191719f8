package runstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
)

type testBundle struct {
	ctx   context.Context
	store *runstore.Store
	now   time.Time
}

func setup(t *testing.T, opts runstore.Options) *testBundle {
	t.Helper()
	srv := redistest.Start(t)
	b := &testBundle{ctx: context.Background(), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	opts.Now = func() time.Time { return b.now }
	b.store = runstore.New(srv.Client(t), opts)
	return b
}

func (b *testBundle) create(t *testing.T, id string, sc runstore.Scope) *runstore.Run {
	t.Helper()
	r, created, err := b.store.Create(b.ctx, runstore.Meta{ID: id, Kind: runstore.KindBackfill, Scope: sc, CreatedAt: b.now}, "")
	if err != nil || !created {
		t.Fatalf("create %s: created=%v err=%v", id, created, err)
	}
	return r
}

func TestCreateRefusesASecondActiveRunOfTheSameScopeButNotADryRun(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{Domains: []string{"b.example.com", "a.example.com"}})

	_, _, err := b.store.Create(b.ctx, runstore.Meta{ID: "r2", Scope: runstore.Scope{Domains: []string{"a.example.com", "b.example.com"}}}, "")
	var conflict *runstore.ConflictError
	if !errors.As(err, &conflict) || conflict.ActiveID != "r1" {
		t.Fatalf("same scope in another order: got %v, want conflict with r1", err)
	}
	b.create(t, "r3", runstore.Scope{Domains: []string{"a.example.com", "b.example.com"}, DryRun: true})

	if _, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Queued}, To: runstore.Cancelled}); err != nil {
		t.Fatal(err)
	}
	b.create(t, "r4", runstore.Scope{Domains: []string{"a.example.com", "b.example.com"}})
}

func TestCreateWithTheSameIdempotencyKeyReturnsTheFirstRun(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	first, created, err := b.store.Create(b.ctx, runstore.Meta{ID: "r1"}, "key-1")
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := b.store.Create(b.ctx, runstore.Meta{ID: "r2"}, "key-1")
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("replayed key: got run %v created=%v err=%v, want r1 not created", again, created, err)
	}
}

func TestClaimFencesOutAnEarlierSliceAndRejectsStaleAndEarlySlices(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{})
	if err := b.store.SetPlan(b.ctx, "r1", 0, runstore.Plan{}, 0); !errors.Is(err, runstore.ErrFenced) {
		t.Fatalf("plan without a claim: got %v, want ErrFenced", err)
	}
	f1, err := b.store.Claim(b.ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	run, _ := b.store.Get(b.ctx, "r1")
	if run.State != runstore.Running || run.StartedAt == nil {
		t.Fatalf("claim of a queued run: state %s started %v, want running with a start time", run.State, run.StartedAt)
	}
	f2, err := b.store.Claim(b.ctx, "r1", 0) // the same task re-delivered after a crash
	if err != nil || f2 <= f1 {
		t.Fatalf("second claim: fence %d err %v", f2, err)
	}
	if _, err := b.store.Commit(b.ctx, "r1", f1, runstore.Commit{Stream: -1}); !errors.Is(err, runstore.ErrFenced) {
		t.Fatalf("commit by the fenced slice: got %v, want ErrFenced", err)
	}
	if _, err := b.store.Claim(b.ctx, "r1", 1); !errors.Is(err, runstore.ErrNotYet) {
		t.Fatalf("claim of the next slice before hand-over: got %v, want ErrNotYet", err)
	}
	if err := b.store.HandOver(b.ctx, "r1", f2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Claim(b.ctx, "r1", 0); !errors.Is(err, runstore.ErrStale) {
		t.Fatalf("claim of a handed-over slice: got %v, want ErrStale", err)
	}
	if _, err := b.store.Claim(b.ctx, "r1", 1); err != nil {
		t.Fatalf("claim of the continuation: %v", err)
	}
}

func TestCommitAppliesCheckpointCountersLearnersEventsAndLedgerTogether(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{RejectedCap: 2, EventCap: 3})
	b.create(t, "r1", runstore.Scope{})
	fence, _ := b.store.Claim(b.ctx, "r1", 0)
	plan := runstore.Plan{Streams: []runstore.StreamDef{{Name: "courses", Kind: "courses"}, {Name: "learners:a", Kind: "learners", Domain: "a"}}}
	if err := b.store.SetPlan(b.ctx, "r1", fence, plan, 10); err != nil {
		t.Fatal(err)
	}
	var rejected []runstore.Rejected
	for i := 0; i < 3; i++ {
		rejected = append(rejected, runstore.Rejected{Object: "student", ExternalID: fmt.Sprint("u", i), Code: "STRING_TOO_LONG", Row: []byte(`{}`)})
	}
	var events []runstore.Event
	for i := 0; i < 5; i++ {
		events = append(events, runstore.Event{Kind: "batch", Message: fmt.Sprint("e", i)})
	}
	st, err := b.store.Commit(b.ctx, "r1", fence, runstore.Commit{
		Stream: 0, Checkpoint: map[string]any{"page_url": "next"}, StreamDone: true,
		Counters: map[string]runstore.Counters{"student": {Read: 5, Written: 2, Created: 2, Rejected: 3}},
		Learners: []string{"u1", "u2"}, Domain: "a", Students: []string{"u3"}, Events: events, Rejected: rejected, ProgressDone: 4,
	})
	if err != nil || st != runstore.Running {
		t.Fatalf("commit: state %s err %v", st, err)
	}
	run, err := b.store.Get(b.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got := run.Counters["student"]; got.Read != 5 || got.Rejected != 3 || !got.Balanced() {
		t.Fatalf("counters %+v", got)
	}
	if !run.Streams[0].Done || run.Current != 1 || string(run.Streams[0].Checkpoint) != `{"page_url":"next"}` {
		t.Fatalf("stream 0 after done commit: %+v current %d", run.Streams[0], run.Current)
	}
	if run.Progress.Done != 4 || run.Progress.Total != 10 || run.Progress.Percent != 40 {
		t.Fatalf("progress %+v", run.Progress)
	}
	if run.RejectedDropped != 1 {
		t.Fatalf("ledger over its cap: dropped %d, want 1", run.RejectedDropped)
	}
	rows, total, _ := b.store.RejectedPage(b.ctx, "r1", 0, 10)
	if total != 2 || rows[0].ExternalID != "u0" || rows[1].Code != "STRING_TOO_LONG" {
		t.Fatalf("ledger: %d rows %+v", total, rows)
	}
	evs, _ := b.store.Events(b.ctx, "r1", 0)
	if len(evs) != 3 || evs[2].Message != "e4" {
		t.Fatalf("events keep the newest 3: %+v", evs)
	}
	ids := []string{"u1", "u9", "u2", "u3"}
	for domain, accounted := range map[string][]bool{"a": {true, false, true, false}, "b": {false, false, false, false}, "": {false, false, false, false}} {
		ls, err := b.store.Learners(b.ctx, "r1", domain, ids)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ls.Done, []bool{true, false, true, false}) || !slices.Equal(ls.Student, []bool{false, false, false, true}) ||
			!slices.Equal(ls.Accounted, accounted) {
			t.Fatalf("learners of %q: %+v, want accounted %v", domain, ls, accounted)
		}
	}
	if n, _ := b.store.AccountedCount(b.ctx, "r1", "a"); n != 2 {
		t.Fatalf("domain a accounts for %d learners, want 2", n)
	}
}

func TestPauseParksTheChainSoResumeEnqueuesAFreshSlice(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{})
	fence, _ := b.store.Claim(b.ctx, "r1", 0)
	if _, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Running}, To: runstore.Paused}); err != nil {
		t.Fatal(err)
	}
	st, err := b.store.Commit(b.ctx, "r1", fence, runstore.Commit{Stream: -1})
	if err != nil || st != runstore.Paused {
		t.Fatalf("commit after pause reports %s, %v; want paused", st, err)
	}
	// A slice task that was already queued when the pause came parks the chain.
	var parked *runstore.ParkedError
	if _, err := b.store.Claim(b.ctx, "r1", 0); !errors.As(err, &parked) || parked.State != runstore.Paused {
		t.Fatalf("claim while paused: %v", err)
	}
	prev, seq, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Paused}, To: runstore.Running})
	if err != nil || prev != runstore.Paused || seq != 1 {
		t.Fatalf("resume: prev %s seq %d err %v; want paused, seq 1", prev, seq, err)
	}
	if _, err := b.store.Claim(b.ctx, "r1", seq); err != nil {
		t.Fatalf("claim of the resumed slice: %v", err)
	}
	if _, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Paused}, To: runstore.Running}); !errors.Is(err, runstore.ErrBadTransition) {
		t.Fatalf("resume of a running run: %v, want ErrBadTransition", err)
	}
}

// A slice that fails its run then hands over; an operator may resume the run in between.
// The resume's task must stay the chain's next slice: the late hand-over is fenced off.
func TestResumeBeforeTheFailingSliceHandsOverKeepsTheResumedSliceNext(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{})
	fence, _ := b.store.Claim(b.ctx, "r1", 0)
	if _, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Running}, To: runstore.Failed, Fence: fence}); err != nil {
		t.Fatal(err)
	}
	_, seq, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Failed}, To: runstore.Running})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.HandOver(b.ctx, "r1", fence, 0); !errors.Is(err, runstore.ErrFenced) {
		t.Fatalf("the failing slice's late hand-over: %v, want ErrFenced", err)
	}
	if _, err := b.store.Claim(b.ctx, "r1", seq); err != nil {
		t.Fatalf("claim of the resumed slice %d: %v", seq, err)
	}
}

func TestProgressRateAndETAComeFromRecentCommits(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{})
	fence, _ := b.store.Claim(b.ctx, "r1", 0)
	if err := b.store.SetPlan(b.ctx, "r1", fence, runstore.Plan{}, 1000); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := b.store.Commit(b.ctx, "r1", fence, runstore.Commit{Stream: -1, ProgressDone: 100}); err != nil {
			t.Fatal(err)
		}
		b.now = b.now.Add(10 * time.Second)
	}
	run, _ := b.store.Get(b.ctx, "r1")
	// 200 learners between the first and last commit, 20 s apart: 10/s, 700 left → 70 s.
	if run.Progress.Rate != 10 || run.Progress.ETASeconds != 70 {
		t.Fatalf("progress %+v, want rate 10 and ETA 70", run.Progress)
	}
}

func TestTerminalStateReleasesTheScopeAndResumeOfAFailedRunRetakesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, runstore.Options{})
	b.create(t, "r1", runstore.Scope{Objects: []string{"course"}})
	if _, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Queued}, To: runstore.Failed, Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	run, _ := b.store.Get(b.ctx, "r1")
	if run.Error != "boom" || run.FinishedAt == nil {
		t.Fatalf("failed run: %+v", run)
	}
	b.create(t, "r2", runstore.Scope{Objects: []string{"course"}})
	_, _, err := b.store.Transition(b.ctx, "r1", runstore.Transition{From: []runstore.State{runstore.Failed}, To: runstore.Running})
	var conflict *runstore.ConflictError
	if !errors.As(err, &conflict) || conflict.ActiveID != "r2" {
		t.Fatalf("resume while another run holds the scope: %v", err)
	}
}
