package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// peakRSS reads a live process's high-water resident set size in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func skilljarCalls(sj *skilljarsim.Sim) (total, progress int) {
	for _, c := range sj.Calls() {
		total += c.Count
		if c.Endpoint == "GET /v1/users/{id}/published-courses" {
			progress += c.Count
		}
	}
	return total, progress
}

// fullBackfill runs a whole backfill of an org of n learners with a worker process at zero
// latency and no limits, and reports throughput, calls and the worker's peak memory.
func fullBackfill(b *testing.B, users int) {
	s := newStack(b, skilljarsim.Config{Users: users, Seed: 11}, salesforcesim.Config{})
	worker := startProcess(b, s.env("SKILLJAR_RATE_LIMIT=1000000/1s", "LOG_LEVEL=warn", "BACKFILL_WORKER_CONCURRENCY=2"), "worker")
	start := time.Now()
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{}, Trigger: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	run = s.WaitFor(b, run.ID, 30*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	elapsed := time.Since(start).Seconds()
	rss, err := peakRSS(worker.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	worker.signal(b, syscall.SIGTERM)
	if run.Summary == nil || run.Summary.Verdict != "exact" {
		b.Fatalf("run ended %s, summary %+v", run.State, run.Summary)
	}
	total := run.Total()
	sjTotal, _ := skilljarCalls(s.Skilljar)
	sfUsed, _ := s.Salesforce.APIUsage()
	progress := run.Counters["course_progress"].Written
	b.ReportMetric(float64(users)/elapsed, "learners/s")
	b.ReportMetric(float64(progress)/elapsed, "progress_rows/s")
	b.ReportMetric(float64(sjTotal), "skilljar_calls")
	b.ReportMetric(float64(sjTotal)/float64(users), "skilljar_calls/learner")
	b.ReportMetric(float64(sfUsed)*1000/float64(total.Written), "sf_calls/1000rows")
	b.ReportMetric(float64(total.Written), "rows")
	b.ReportMetric(float64(rss)/(1<<20), "worker_peak_rss_MiB")
	b.ReportMetric(elapsed, "s")
	// Both simulators live in this process, holding the whole org on each side.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "sims_heap_MiB")
}

func BenchmarkFullBackfill20k(b *testing.B)  { fullBackfill(b, 20000) }
func BenchmarkFullBackfill100k(b *testing.B) { fullBackfill(b, 100000) }

// BenchmarkUtilizationAt20CallsPerSecond runs a 20,000-learner backfill against a simulator
// limited to 20 calls/s with 50 ms latency for a fixed window and reports the share of the
// allowed calls the engine made.
func BenchmarkUtilizationAt20CallsPerSecond(b *testing.B) {
	const rate, window = 20, 90 * time.Second
	s := newStack(b, skilljarsim.Config{Users: 20000, Seed: 12, Latency: 50 * time.Millisecond, PerMinute: rate * 60},
		salesforcesim.Config{Latency: 50 * time.Millisecond})
	startProcess(b, s.env(fmt.Sprintf("SKILLJAR_RATE_LIMIT=%d/1s", rate), "LOG_LEVEL=warn"), "worker")
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{}, Trigger: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	before, _ := skilljarCalls(s.Skilljar)
	start := time.Now()
	time.Sleep(window)
	after, progress := skilljarCalls(s.Skilljar)
	elapsed := time.Since(start).Seconds()
	if _, err := s.Engine.Cancel(context.Background(), run.ID); err != nil {
		b.Fatal(err)
	}
	throttled := 0
	for _, c := range s.Skilljar.Calls() {
		if c.Status == 429 {
			throttled += c.Count
		}
	}
	b.ReportMetric(float64(after-before)/(rate*elapsed), "utilization")
	b.ReportMetric(float64(after-before)/elapsed, "calls/s")
	b.ReportMetric(float64(progress)/elapsed, "learners/s")
	b.ReportMetric(float64(throttled), "429s")
}

// BenchmarkCatchupAfter20kBackfill backfills a 20,000-learner org, changes 1% of the
// learners, and reports what the catch-up spent against the backfill.
func BenchmarkCatchupAfter20kBackfill(b *testing.B) {
	s := newStack(b, skilljarsim.Config{Users: 20000, Seed: 13}, salesforcesim.Config{})
	startProcess(b, s.env("SKILLJAR_RATE_LIMIT=1000000/1s", "LOG_LEVEL=warn"), "worker")
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{}, Trigger: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	run = s.WaitFor(b, run.ID, 30*time.Minute, "the backfill to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(b, run)
	backfillCalls, _ := skilljarCalls(s.Skilljar)
	writesBefore := len(s.Salesforce.WriteLog())

	changed := s.Skilljar.ChangeLearners(0.01)
	start := time.Now()
	catchup, err := s.Engine.StartCatchup(s.Ctx, runstore.Scope{}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	catchup = s.WaitFor(b, catchup.ID, 30*time.Minute, "the catch-up to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	elapsed := time.Since(start).Seconds()
	if catchup.State != runstore.Succeeded {
		b.Fatalf("catch-up ended %s: %s", catchup.State, catchup.Error)
	}
	after, _ := skilljarCalls(s.Skilljar)
	calls := after - backfillCalls
	t := catchup.Total()
	b.ReportMetric(float64(backfillCalls), "backfill_calls")
	b.ReportMetric(float64(calls), "catchup_calls")
	b.ReportMetric(100*float64(calls)/float64(backfillCalls), "catchup_calls_%")
	b.ReportMetric(float64(len(changed)), "changed_learners")
	b.ReportMetric(float64(len(s.Salesforce.WriteLog())-writesBefore), "rows_written")
	b.ReportMetric(float64(t.Unchanged), "rows_unchanged_skipped")
	b.ReportMetric(elapsed, "catchup_s")
}

// BenchmarkAllowanceSpendingAt1200PerMinute backfills 3,000 learners through a worker limited
// to the simulator's own 1,200 calls a minute at 50 ms latency, once per window kind, and
// reports the wall time against the allowance-spending limit: every window's allowance spent
// as the window opens, at the engine's top speed (its progress fetchers over the latency).
func BenchmarkAllowanceSpendingAt1200PerMinute(b *testing.B) {
	const perMinute, latency, users = 1200, 50 * time.Millisecond, 3000
	// pipeline.Config.ProgressConcurrency's default: progress calls in flight at once.
	const fetchers = 4
	for _, kind := range []string{skilljarsim.ThrottleSliding, skilljarsim.ThrottleFixed} {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				s := newStack(b, skilljarsim.Config{Users: users, Seed: 14, Latency: latency, PerMinute: perMinute, ThrottleWindow: kind},
					salesforcesim.Config{Latency: latency})
				startProcess(b, s.env(fmt.Sprintf("SKILLJAR_RATE_LIMIT=%d/1m", perMinute), "SKILLJAR_RATE_WINDOW="+kind, "LOG_LEVEL=warn"), "worker")
				start := time.Now()
				run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{}, Trigger: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				clock := watchCalls(b.Context(), s.Skilljar, start)
				run = s.WaitFor(b, run.ID, 30*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
				wall := time.Since(start)
				s.requireExact(b, run)
				calls, _ := skilljarCalls(s.Skilljar)
				throttled := 0
				for _, c := range s.Skilljar.Calls() {
					if c.Status == 429 {
						throttled += c.Count
					}
				}
				// A fixed window that is already under way when the run starts is cut short.
				var first time.Duration
				if kind == skilljarsim.ThrottleFixed {
					first = time.Minute - start.Sub(start.Truncate(time.Minute))
				}
				limit := spendingLimit(calls-throttled, perMinute, time.Minute, first, fetchers/latency.Seconds())
				b.ReportMetric(wall.Seconds(), "wall_s")
				b.ReportMetric(limit.Seconds(), "limit_s")
				b.ReportMetric(wall.Seconds()/limit.Seconds(), "wall/limit")
				b.ReportMetric(float64(throttled), "429s")
				b.ReportMetric(float64(calls), "skilljar_calls")
				// Where the rest goes: before the first Skilljar call, after the last one, and
				// in an engine slower than its fetchers allow.
				b.ReportMetric(clock.at(1).Seconds(), "first_call_s")
				b.ReportMetric((wall - clock.at(calls)).Seconds(), "after_last_call_s")
				if kind == skilljarsim.ThrottleSliding {
					// Spending each allowance at the speed the engine showed in the first (whole)
					// window leaves what the limiter itself costs: its margin at each window.
					rate := float64(perMinute-1) / (clock.at(perMinute) - clock.at(1)).Seconds()
					atSpeed := clock.at(1) + spendingLimit(calls-throttled, perMinute, time.Minute, 0, rate) + wall - clock.at(calls)
					b.ReportMetric(rate, "engine_calls/s")
					b.ReportMetric(wall.Seconds()/atSpeed.Seconds(), "wall/limit_at_engine_speed")
				}
			}
		})
	}
}

// callClock samples a simulator's call count every 10ms, to tell when calls happened.
type callClock struct {
	start time.Time
	mu    sync.Mutex
	times []time.Duration // times[i] is when the count was first seen above i
}

func watchCalls(ctx context.Context, sj *skilljarsim.Sim, start time.Time) *callClock {
	c := &callClock{start: start}
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n, at := sj.TotalCalls(), time.Since(start)
			c.mu.Lock()
			for len(c.times) < n {
				c.times = append(c.times, at)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// at is when the nth call (from 1) had been seen, or the latest call's time if fewer were.
func (c *callClock) at(n int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return 0
	}
	return c.times[min(n, len(c.times))-1]
}

// spendingLimit is how long calls take when each window's allowance of perWindow is spent
// the moment the window opens, at rate calls per second. Windows follow each other every
// period; the first lasts first when that is shorter (a fixed window already under way),
// else a whole period.
func spendingLimit(calls, perWindow int, period, first time.Duration, rate float64) time.Duration {
	if first <= 0 {
		first = period
	}
	var opens, length time.Duration = 0, first
	for {
		n := min(calls, perWindow, int(length.Seconds()*rate))
		calls -= n
		if calls == 0 {
			return opens + time.Duration(float64(n)/rate*float64(time.Second))
		}
		opens += length
		length = period
	}
}
