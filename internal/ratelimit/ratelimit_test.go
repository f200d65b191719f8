package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
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

func TestParseWindowKnowsBothKinds(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ratelimit.Window{"sliding": ratelimit.Sliding, " Fixed ": ratelimit.Fixed} {
		if got, err := ratelimit.ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ratelimit.ParseWindow("leaky"); err == nil || !strings.Contains(err.Error(), `"leaky"`) {
		t.Errorf("ParseWindow(leaky) = %v, want an error naming the value", err)
	}
}

// The simulator's throttle at TimeScale 120: a "minute" of 500ms and an "hour" of 30s.
const (
	simScale    = 120
	perMinute   = 5
	perHour     = 15
	minute      = 500 * time.Millisecond
	hour        = 30 * time.Second
	testMargin  = 100 * time.Millisecond
	testRunTime = 2 * time.Second
)

// grantLog records when each call was granted and what the server answered.
type grantLog struct {
	mu       sync.Mutex
	grants   []time.Time
	statuses map[int]int
}

// callThrough runs callers on each limiter until ctx ends; every caller waits for a grant,
// then calls the simulator's ping over HTTP. Separate limiters with their own Redis
// connections stand in for separate worker processes.
func callThrough(t testing.TB, ctx context.Context, sim *skilljarsim.Sim, limiters []*ratelimit.Limiter, callersEach int) *grantLog {
	t.Helper()
	log := &grantLog{statuses: map[int]int{}}
	client := &http.Client{}
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range callersEach {
			wg.Go(func() {
				for {
					if _, err := l.Wait(ctx); err != nil {
						return
					}
					granted := time.Now()
					req, err := http.NewRequest(http.MethodGet, sim.URL()+"/v1/ping", nil)
					if err != nil {
						t.Error(err)
						return
					}
					req.SetBasicAuth(sim.APIKey(), "")
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					log.mu.Lock()
					log.grants = append(log.grants, granted)
					log.statuses[resp.StatusCode]++
					log.mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(log.grants, time.Time.Compare)
	return log
}

// sleepUntilOffset sleeps until the clock stands offset past a whole multiple of period.
func sleepUntilOffset(period, offset time.Duration) {
	now := time.Now()
	d := offset - now.Sub(now.Truncate(period))
	if d < 0 {
		d += period
	}
	time.Sleep(d)
}

func TestLimitersSpendEachWindowAsItOpensWithZero429s(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ kind, server ratelimit.Window }{
		{ratelimit.Sliding, ratelimit.Sliding},
		{ratelimit.Fixed, ratelimit.Fixed},
		// A fixed window is one of the spans a sliding one checks.
		{ratelimit.Sliding, ratelimit.Fixed},
	} {
		kind := tc.kind
		t.Run(string(kind)+"_against_"+string(tc.server), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			sim, err := skilljarsim.Start(skilljarsim.Config{
				Users: 10, PerMinute: perMinute, PerHour: perHour, TimeScale: simScale, ThrottleWindow: string(tc.server),
			}, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			limits := []ratelimit.Limit{{perHour, hour}, {perMinute, minute}}
			var limiters []*ratelimit.Limiter
			for range 2 {
				limiters = append(limiters, ratelimit.New(srv.Client(t), "skilljar", limits,
					ratelimit.WithWindow(kind), ratelimit.WithMargin(testMargin)))
			}
			if tc.server == ratelimit.Fixed {
				// The run must see one fixed hour only, or the hour's allowance would reset
				// within it.
				now := time.Now()
				if now.Sub(now.Truncate(hour)) > hour-testRunTime-testMargin {
					sleepUntilOffset(hour, testMargin)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), testRunTime)
			defer cancel()
			log := callThrough(t, ctx, sim, limiters, 3)

			if n := log.statuses[http.StatusTooManyRequests]; n > 0 {
				t.Fatalf("the simulator refused %d of %d calls: the limiters let more through than a window allows", n, len(log.grants))
			}
			// Three minutes' allowances fit in the run; the hour's allowance then binds.
			if got := log.statuses[http.StatusOK]; got != perHour {
				t.Fatalf("%d calls answered in a run that holds a whole hour's allowance of %d", got, perHour)
			}
			// Each minute's allowance goes out in one burst as the window opens: a paced
			// limiter would have granted only 3 of 5 in half a window.
			for k := 0; k+perMinute <= len(log.grants); k += perMinute {
				burst := log.grants[k : k+perMinute]
				if spread := burst[perMinute-1].Sub(burst[0]); spread >= minute/2 {
					t.Errorf("calls %d to %d were granted over %v; a window's allowance should go out at once", k+1, k+perMinute, spread)
				}
			}
		})
	}
}

// A limiter that assumes fixed windows spends a fresh allowance at each window start, which
// a sliding server refuses when the last window's calls came late in it: the check the test
// above relies on does see a limiter that lets too much through.
func TestFixedWindowsAgainstASlidingServerDraw429s(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	sim, err := skilljarsim.Start(skilljarsim.Config{Users: 10, PerMinute: perMinute, TimeScale: simScale}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	l := ratelimit.New(srv.Client(t), "skilljar", []ratelimit.Limit{{perMinute, minute}},
		ratelimit.WithWindow(ratelimit.Fixed), ratelimit.WithMargin(testMargin))
	sleepUntilOffset(minute, minute/2)
	ctx, cancel := context.WithTimeout(context.Background(), minute)
	defer cancel()
	log := callThrough(t, ctx, sim, []*ratelimit.Limiter{l}, 3)
	if log.statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("a fixed-window limiter drew no 429 from a sliding server (statuses %v)", log.statuses)
	}
}

// A call granted within the margin of a fixed window's end may arrive in the next window, so
// it spends the next window's allowance too.
func TestFixedWindowCountsALateCallInTheNextWindowToo(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const period, margin = time.Second, 300 * time.Millisecond
	l := ratelimit.New(srv.Client(t), "k", []ratelimit.Limit{{3, period}},
		ratelimit.WithWindow(ratelimit.Fixed), ratelimit.WithMargin(margin))
	sleepUntilOffset(period, period-margin/2)
	ctx := context.Background()
	for range 3 {
		if _, err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The next window opens in margin/2, yet holds these three calls already: nothing more
	// is granted until it has ended and the margin after it has passed.
	short, cancel := context.WithTimeout(ctx, period)
	defer cancel()
	if _, err := l.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fourth call was granted in the window the first three may land in (err %v)", err)
	}
}

func TestPauseUntilFromOneProcessHoldsEveryProcess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	limits := []ratelimit.Limit{{100, time.Second}}
	a := ratelimit.New(srv.Client(t), "k", limits)
	b := ratelimit.New(srv.Client(t), "k", limits, ratelimit.WithWindow(ratelimit.Fixed))
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
	for _, kind := range []ratelimit.Window{ratelimit.Sliding, ratelimit.Fixed} {
		l := ratelimit.New(srv.Client(t), "k", []ratelimit.Limit{{1, time.Hour}}, ratelimit.WithWindow(kind))
		ctx := context.Background()
		if _, err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		if _, err := l.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Wait on an exhausted budget = %v, want context.DeadlineExceeded", kind, err)
		}
		cancel()
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
