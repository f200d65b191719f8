package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
)

func TestParseLimitsReadsAListAndNamesTheBadPart(t *testing.T) {
	t.Parallel()
	got, err := ratelimit.ParseLimits(" 600/1m, 5000/1h ")
	if err != nil {
		t.Fatal(err)
	}
	want := []ratelimit.Limit{{600, time.Minute}, {5000, time.Hour}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ParseLimits = %v, want %v", got, want)
	}

	for _, tc := range []struct{ in, names string }{
		{"", "empty"},
		{"600", `"600"`},
		{"600/1m,abc/1h", `"abc"`},
		{"600/1m,0/1h", `"0"`},
		{"-5/1m", `"-5"`},
		{"600/1m,5000/hour", `"hour"`},
		{"600/0s", `"0s"`},
		{"600/1m,", `""`},
	} {
		_, err := ratelimit.ParseLimits(tc.in)
		if err == nil {
			t.Errorf("ParseLimits(%q) succeeded, want an error", tc.in)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.names) || !strings.Contains(msg, "<count>/<period>") {
			t.Errorf("ParseLimits(%q) error %q should name %s and the expected form", tc.in, msg, tc.names)
		}
	}
}

func TestLimitersSharingAKeySpendOneBudget(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	limit := ratelimit.Limit{Count: 20, Period: 500 * time.Millisecond}
	// Separate clients stand in for separate worker processes.
	limiters := []*ratelimit.Limiter{
		ratelimit.New(srv.Client(t), "skilljar", []ratelimit.Limit{limit}),
		ratelimit.New(srv.Client(t), "skilljar", []ratelimit.Limit{limit}),
	}

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var (
		mu     sync.Mutex
		counts = make([]int, len(limiters))
		wg     sync.WaitGroup
	)
	for i, l := range limiters {
		for range 3 { // several callers per process, like concurrent progress fetches
			wg.Go(func() {
				for {
					if _, err := l.Wait(ctx); err != nil {
						return
					}
					mu.Lock()
					counts[i]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	total := counts[0] + counts[1]
	// Calls are paced, so over any stretch the grants can exceed the budget of that stretch
	// by at most the one call granted at its very start.
	allowed := int(float64(limit.Count)*elapsed.Seconds()/limit.Period.Seconds()) + 1
	if total > allowed {
		t.Fatalf("two limiters on one key granted %d calls in %v; one budget allows %d", total, elapsed, allowed)
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("one process was starved: grants per process %v", counts)
	}
}

func TestLongerLimitAllowsTheShortPaceUntilItsBudgetIsSpent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// Paced at about one call per 12ms, but only 4 calls per second.
	l := ratelimit.New(srv.Client(t), "k", []ratelimit.Limit{{4, time.Second}, {10, 100 * time.Millisecond}})
	ctx := context.Background()

	var waited []time.Duration
	start := time.Now()
	for range 5 {
		w, err := l.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waited = append(waited, w)
	}
	if waited[1] >= 500*time.Millisecond || waited[3] >= 500*time.Millisecond {
		t.Fatalf("calls within the longer budget should only wait for the pace, waited %v", waited)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Fatalf("the 5th call was granted %v after the first; a 4/1s limit needs at least 1s (waits %v)", elapsed, waited)
	}
}

func TestPauseUntilFromOneProcessHoldsEveryProcess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	limits := []ratelimit.Limit{{100, time.Second}}
	a := ratelimit.New(srv.Client(t), "k", limits)
	b := ratelimit.New(srv.Client(t), "k", limits)
	other := ratelimit.New(srv.Client(t), "other-key", limits)
	ctx := context.Background()

	pauseEnd := time.Now().Add(400 * time.Millisecond)
	if err := a.PauseUntil(ctx, pauseEnd); err != nil {
		t.Fatal(err)
	}
	// A shorter pause arriving later must not cut the first one short.
	if err := b.PauseUntil(ctx, time.Now().Add(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Now().After(pauseEnd) {
		t.Fatal("a pause on one key held a limiter on another key")
	}
	if _, err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if early := time.Until(pauseEnd); early > 0 {
		t.Fatalf("b was granted a call %v before the pause a set had ended", early)
	}
}

func TestWaitStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := ratelimit.New(srv.Client(t), "k", []ratelimit.Limit{{1, time.Hour}})
	ctx := context.Background()
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on an exhausted budget = %v, want context.DeadlineExceeded", err)
	}
}

func TestWaitReportsAnUnreachableRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := ratelimit.New(srv.Client(t), "k", []ratelimit.Limit{{10, time.Second}})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := l.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "ratelimit: acquire") {
		t.Fatalf("Wait with Redis down = %v, want a wrapped acquire error", err)
	}
}
