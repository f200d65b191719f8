package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// drain takes every outcome the fetcher hands back.
func drain[T any](o *ordered[T]) []outcome[T] {
	var out []outcome[T]
	for {
		r, ok := o.Next()
		if !ok {
			return out
		}
		out = append(out, r)
	}
}

func TestOrderedHandsOutcomesBackInItemOrderWhateverOrderFetchesFinishIn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 200
	var finished []int
	var mu sync.Mutex
	o := fetchOrdered(context.Background(), n, 8, 32, func(_ context.Context, i int) (int, error) {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		mu.Lock()
		finished = append(finished, i)
		mu.Unlock()
		return i * i, nil
	})
	defer o.Close()
	got := drain(o)
	if len(got) != n {
		t.Fatalf("handed back %d outcomes, want %d", len(got), n)
	}
	for i, r := range got {
		if r.Index != i || r.Value != i*i || r.Err != nil {
			t.Fatalf("outcome %d = %+v, want item %d with value %d", i, r, i, i*i)
		}
	}
	inOrder := true
	for i := range finished {
		inOrder = inOrder && finished[i] == i
	}
	if inOrder {
		t.Fatal("every fetch finished in item order, so the test proved nothing about reordering; vary the delays")
	}
}

func TestOrderedRunsAtMostConcurrencyFetchesAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n, concurrency = 60, 4
	var inFlight, peak atomic.Int32
	// The first fetches wait until concurrency of them run together, so the peak is reached
	// for certain; the fetcher must start no other fetch meanwhile.
	var started atomic.Int32
	together := make(chan struct{})
	o := fetchOrdered(context.Background(), n, concurrency, n, func(_ context.Context, i int) (int, error) {
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		if started.Add(1) == concurrency {
			close(together)
		}
		if i < concurrency {
			<-together
		}
		return i, nil
	})
	defer o.Close()
	if got := len(drain(o)); got != n {
		t.Fatalf("handed back %d outcomes, want %d", got, n)
	}
	if p := peak.Load(); p != concurrency {
		t.Fatalf("at most %d fetches ran at once, want exactly the concurrency %d", p, concurrency)
	}
}

func TestOrderedFetchesAtMostAheadItemsBeforeTheyAreTakenAndStopHandsBackThoseStarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n, ahead = 100, 5
	var started atomic.Int32
	o := fetchOrdered(context.Background(), n, 2, ahead, func(_ context.Context, i int) (int, error) {
		started.Add(1)
		return i, nil
	})
	defer o.Close()
	// Nothing is taken yet: the fetcher fills its window and must then wait.
	for started.Load() < ahead {
		time.Sleep(time.Millisecond)
	}
	o.Stop()
	if got := started.Load(); got != ahead {
		t.Fatalf("%d fetches started before any outcome was taken, want the window of %d", got, ahead)
	}
	got := drain(o)
	if len(got) != ahead {
		t.Fatalf("after Stop, %d outcomes were handed back, want the %d already fetched", len(got), ahead)
	}
	for i, r := range got {
		if r.Index != i || r.Err != nil {
			t.Fatalf("outcome %d = %+v", i, r)
		}
	}
	if s := started.Load(); s != ahead {
		t.Fatalf("%d fetches started in all; none may start after Stop", s)
	}
}

func TestOrderedHandsBackAFetchErrorAtItsItemAndKeepsTheOthers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	boom := errors.New("boom")
	o := fetchOrdered(context.Background(), 10, 3, 10, func(_ context.Context, i int) (string, error) {
		if i == 6 {
			return "", boom
		}
		return "ok", nil
	})
	defer o.Close()
	got := drain(o)
	if len(got) != 10 {
		t.Fatalf("handed back %d outcomes, want 10", len(got))
	}
	for i, r := range got {
		wantErr := i == 6
		if r.Index != i || (r.Err != nil) != wantErr || (wantErr && !errors.Is(r.Err, boom)) || (!wantErr && r.Value != "ok") {
			t.Fatalf("outcome %d = %+v", i, r)
		}
	}
}

func TestOrderedCloseCancelsRunningFetchesAndLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var cancelled atomic.Int32
	running := make(chan struct{}, 3)
	o := fetchOrdered(context.Background(), 1000, 3, 50, func(ctx context.Context, i int) (int, error) {
		running <- struct{}{}
		<-ctx.Done()
		cancelled.Add(1)
		return 0, ctx.Err()
	})
	for range 3 {
		<-running
	}
	o.Close()
	if c := cancelled.Load(); c != 3 {
		t.Fatalf("%d fetches saw the cancellation, want the 3 running", c)
	}
	if _, ok := o.Next(); ok {
		t.Fatal("Next handed back an outcome after Close")
	}
	o.Close() // a second Close is harmless
}

func TestOrderedEndsWithTheContextsErrorWhenTheCallerCancels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The fetches themselves ignore the cancellation: only the fetcher can say it ended early.
	o := fetchOrdered(ctx, 1000, 2, 4, func(_ context.Context, i int) (int, error) {
		if i == 1 {
			cancel()
		}
		return i, nil
	})
	defer o.Close()
	got := drain(o)
	// The producer checks the context before every start: a few items may start while the
	// cancel propagates, not the thousand.
	if len(got) < 2 || len(got) > 100 {
		t.Fatalf("handed back %d outcomes after the cancel, want the few started and one more", len(got))
	}
	for i, r := range got[:len(got)-1] {
		if r.Index != i || r.Err != nil {
			t.Fatalf("outcome %d = %+v", i, r)
		}
	}
	if last := got[len(got)-1]; !errors.Is(last.Err, context.Canceled) {
		t.Fatalf("the last outcome is %+v; a cancelled fetcher must end with the context's error, not look finished", last)
	}
}
