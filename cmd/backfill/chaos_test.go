package main

import (
	"fmt"
	"github.com/spf13/pflag"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/stacktest"
)

// chaosConfig sizes one chaos run. make test runs the short default; make chaos sets the
// BACKFILL_CHAOS_* variables for a long one.
type chaosConfig struct {
	users, kills, workers int
	seed                  uint64
	timeout               time.Duration
	// sim are `backfill sim` flags: the faults both simulators inject.
	sim []string
}

func chaosConfigFromEnv(t *testing.T) chaosConfig {
	t.Helper()
	c := chaosConfig{users: 3000, kills: 5, workers: 3, seed: uint64(time.Now().UnixNano()), timeout: 6 * time.Minute}
	for name, dst := range map[string]*int{"BACKFILL_CHAOS_USERS": &c.users, "BACKFILL_CHAOS_KILLS": &c.kills, "BACKFILL_CHAOS_WORKERS": &c.workers} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q is not a positive whole number", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("BACKFILL_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BACKFILL_CHAOS_SEED=%q is not a whole number", v)
		}
		c.seed = n
	}
	if v := os.Getenv("BACKFILL_CHAOS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BACKFILL_CHAOS_TIMEOUT=%q is not a duration", v)
		}
		c.timeout = d
	}
	// 5% of Skilljar and 2% of Salesforce calls answer 5xx, 1% of written records fail with
	// UNABLE_TO_LOCK_ROW, and access tokens live 20 s, so every worker refreshes (and
	// rotates the refresh token) many times a run.
	c.sim = []string{
		"--seed", strconv.FormatUint(c.seed%1000+1, 10), "--users", strconv.Itoa(c.users), "--domains", "3", "--courses", "20",
		"--fault-rate", "0.05", "--lock-error-rate", "0.01", "--session-ttl", "20s",
		"--skilljar-per-minute", "0", "--skilljar-per-hour", "0", "--salesforce-daily-limit", "10000000",
	}
	// BACKFILL_CHAOS_SIM adds or overrides simulator flags, e.g. "--fault-rate 0.1".
	c.sim = append(c.sim, strings.Fields(os.Getenv("BACKFILL_CHAOS_SIM"))...)
	return c
}

// chaosKill is one scheduled fault: when the run's learner progress passes at, SIGKILL a
// worker (and start a replacement), or SIGKILL Redis and restart it from its AOF after down.
type chaosKill struct {
	at    float64
	redis bool
	down  time.Duration

	// What happened: when, to which worker, how long the run made no progress after it,
	// and the rows Salesforce got a second time until the next kill.
	done    bool
	when    time.Time
	victim  int
	stall   time.Duration
	replays int
}

func (k *chaosKill) String() string {
	what := fmt.Sprintf("SIGKILL worker %d", k.victim)
	if k.redis {
		what = fmt.Sprintf("SIGKILL Redis, down %s, AOF restart", k.down.Round(time.Millisecond))
	}
	if !k.done {
		return fmt.Sprintf("at %4.1f%%  %-40s not reached", 100*k.at, what)
	}
	return fmt.Sprintf("at %4.1f%%  %-40s stall %6s  rows replayed %d", 100*k.at, what, k.stall.Round(100*time.Millisecond), k.replays)
}

// chaosSchedule draws the kills from the seed: progress points spread over the run, one
// kill in four (and at least one) of Redis.
func chaosSchedule(rng *rand.Rand, n int) []*chaosKill {
	kills := make([]*chaosKill, n)
	for i := range kills {
		kills[i] = &chaosKill{at: 0.03 + 0.9*rng.Float64(), redis: rng.IntN(4) == 0, down: time.Duration(200+rng.IntN(1800)) * time.Millisecond}
	}
	if n > 1 && !slices.ContainsFunc(kills, func(k *chaosKill) bool { return k.redis }) {
		kills[rng.IntN(n)].redis = true
	}
	slices.SortFunc(kills, func(a, b *chaosKill) int { return int(1e9 * (a.at - b.at)) })
	return kills
}

// progressLog remembers when the run last moved, polled from Redis (which may be down).
type progressLog struct {
	mu    sync.Mutex
	moves []time.Time
	last  string
	run   *runstore.Run
}

func (p *progressLog) watch(s *stack, id string, stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		run, err := s.Store.Get(s.Ctx, id)
		if err != nil {
			continue // Redis is down: no news is no progress
		}
		sig := fmt.Sprint(run.State, run.Current, run.Seq, run.Progress.Done, run.Total())
		p.mu.Lock()
		if sig != p.last {
			p.last = sig
			p.moves = append(p.moves, time.Now())
		}
		p.run = run
		p.mu.Unlock()
	}
}

func (p *progressLog) current() *runstore.Run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.run
}

// stallAfter is how long the run made no progress after t.
func (p *progressLog) stallAfter(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.moves, t, func(m, t time.Time) int { return m.Compare(t) })
	if i == len(p.moves) {
		return time.Since(t)
	}
	return p.moves[i].Sub(t)
}

// TestChaos runs a backfill with real worker processes on a real redis-server with AOF,
// against simulators that inject 5xx, lock errors and short token lifetimes, while a seeded
// schedule SIGKILLs workers and Redis. Salesforce must end exactly like the source, checked
// field by field by simcheck. The printed seed (BACKFILL_CHAOS_SEED) repeats the schedule.
func TestChaos(t *testing.T) {
	t.Parallel()
	cfg := chaosConfigFromEnv(t)
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed>>32|1))
	kills := chaosSchedule(rng, cfg.kills)
	t.Logf("chaos seed %d (BACKFILL_CHAOS_SEED=%d repeats it): %d learners, %d workers, %d kills, simulators %s",
		cfg.seed, cfg.seed, cfg.users, cfg.workers, cfg.kills, strings.Join(cfg.sim, " "))

	var sf simFlags
	fs := pflag.NewFlagSet("sim", pflag.ContinueOnError)
	sf.register(fs, defaultSimFlags())
	if err := fs.Parse(cfg.sim); err != nil {
		t.Fatal(err)
	}
	redisOpts := redistest.Options{AppendOnly: true}
	sfc, err := sf.salesforce()
	if err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, stacktest.Options{Skilljar: sf.skilljar(), Salesforce: sfc, Redis: redisOpts})
	// The simulated Skilljar has no limit here; the engine must not invent one.
	env := s.env("BACKFILL_SLICE_SECONDS=5", "SKILLJAR_RATE_LIMIT=1000000/1m", "LOG_LEVEL=warn")
	workers := make([]*process, cfg.workers)
	for i := range workers {
		workers[i] = startProcess(t, env, "worker")
	}

	started := time.Now()
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Trigger: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	progress := &progressLog{}
	stop := make(chan struct{})
	defer close(stop)
	go progress.watch(s, run.ID, stop)

	deadline := started.Add(cfg.timeout)
	reached := func(at float64) bool {
		r := progress.current()
		return r != nil && (r.State.Terminal() || r.Progress.Total > 0 && float64(r.Progress.Done) >= at*float64(r.Progress.Total))
	}
	replaysAt := make([]int, 0, len(kills)+1)
	for _, k := range kills {
		for !reached(k.at) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if r := progress.current(); r == nil || r.State.Terminal() || time.Now().After(deadline) {
			break
		}
		replaysAt = append(replaysAt, simcheck.Replays(s.Salesforce))
		k.done, k.when = true, time.Now()
		if k.redis {
			s.Redis.Stop()
			time.Sleep(k.down)
			s.Redis.Restart(t, redisOpts)
			continue
		}
		k.victim = rng.IntN(len(workers))
		workers[k.victim].signal(t, syscall.SIGKILL)
		workers[k.victim].wait(t, 10*time.Second)
		workers[k.victim] = startProcess(t, env, "worker")
	}

	var final *runstore.Run
	for time.Now().Before(deadline) {
		if r := progress.current(); r != nil && r.State.Terminal() {
			final = r
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	replaysAt = append(replaysAt, simcheck.Replays(s.Salesforce))
	rep := simcheck.Compare(s.Skilljar.Org(), s.Salesforce)

	var report strings.Builder
	// Stalled is the time without progress after some kill; kills during a stall overlap.
	var stalled time.Duration
	var stalledUntil time.Time
	done := 0
	for i, k := range kills {
		if k.done {
			k.stall = progress.stallAfter(k.when)
			k.replays = replaysAt[done+1] - replaysAt[done]
			if end := k.when.Add(k.stall); end.After(stalledUntil) {
				stalled += end.Sub(later(k.when, stalledUntil))
				stalledUntil = end
			}
			done++
		}
		fmt.Fprintf(&report, "  kill %d: %s\n", i+1, k)
	}
	state, verdict := "still running at the deadline", ""
	if final != nil {
		state = string(final.State)
		if final.Summary != nil {
			verdict = final.Summary.Verdict
		}
	}
	total := final
	if total == nil {
		total = progress.current()
	}
	fmt.Fprintf(&report, "  %d kills done in %s, no progress for %s of it; rows replayed %d; run %s (verdict %q), rejected %d\n",
		done, time.Since(started).Round(time.Second), stalled.Round(100*time.Millisecond), simcheck.Replays(s.Salesforce), state, verdict, total.Total().Rejected)
	fmt.Fprintf(&report, "  Salesforce against the source: missing %d, duplicated %d, mismatched %d (records expected %v)",
		rep.Missing, rep.Extra, rep.Mismatched, rep.Expected)
	t.Logf("chaos seed %d:\n%s", cfg.seed, report.String())

	if final == nil || final.State != runstore.Succeeded || verdict != "exact" || !rep.Exact() {
		if r := progress.current(); r != nil {
			events, _ := s.Store.Events(s.Ctx, run.ID, 15)
			t.Logf("the run at the end: state %s, stream %d of %d, slice %d, progress %+v, last events %+v", r.State, r.Current+1, len(r.Streams), r.Seq, r.Progress, events)
		}
		t.Fatalf("chaos seed %d lost data or did not finish: %s\n%s", cfg.seed, state, rep)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
