package skilljar_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// BenchmarkDomainUsersPage fetches and decodes a full 1,000-learner page with signup fields
// from the simulator at zero latency: the client's own cost per page.
func BenchmarkDomainUsersPage(b *testing.B) {
	sim, err := skilljarsim.Start(skilljarsim.Config{Seed: 1, Domains: 1, Users: 1000}, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	c, err := skilljar.New(skilljar.Config{BaseURL: sim.URL(), APIKey: sim.APIKey()})
	if err != nil {
		b.Fatal(err)
	}
	domain := sim.Org().Domains[0].Name
	const pagesPerLoop = 20 // enough pages per iteration for a steady number at -benchtime 1x
	rows := 0
	for b.Loop() {
		for range pagesPerLoop {
			p, err := c.DomainUsers(context.Background(), domain, "")
			if err != nil {
				b.Fatal(err)
			}
			rows += len(p.Results)
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N*pagesPerLoop), "ms/page")
}

// BenchmarkUtilizationUnderASharedLimit runs two processes of eight progress fetchers each,
// sharing one Redis limiter set at exactly the simulator's limit (20 calls/s: 120 per
// simulated minute of 6s, 50ms latency), and reports the share of the allowance used and the 429s.
func BenchmarkUtilizationUnderASharedLimit(b *testing.B) {
	const perMinute, timeScale = 120, 10
	window := time.Duration(float64(time.Minute) / timeScale)
	sim, err := skilljarsim.Start(skilljarsim.Config{Seed: 2, Users: 2000, PerMinute: perMinute, TimeScale: timeScale, Latency: 50 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	redis := redistest.Start(b)
	learners := sim.Org().Learners

	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*window+window/2)
		key := time.Now().String()
		before := sim.TotalCalls()
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan string)
		go func() {
			defer close(next)
			for i := 0; ; i++ {
				select {
				case next <- learners[i%len(learners)].ID:
				case <-ctx.Done():
					return
				}
			}
		}()
		for range 2 {
			lim := ratelimit.New(redis.Client(b), key, []ratelimit.Limit{{Count: perMinute, Period: window}})
			c, err := skilljar.New(skilljar.Config{BaseURL: sim.URL(), APIKey: sim.APIKey(), Limiter: lim})
			if err != nil {
				b.Fatal(err)
			}
			for range 8 {
				wg.Go(func() {
					for id := range next {
						if _, err := c.UserProgress(ctx, id); err != nil && ctx.Err() == nil {
							b.Error(err)
						}
					}
				})
			}
		}
		wg.Wait()
		cancel()
		elapsed := time.Since(start)
		calls := sim.TotalCalls() - before
		allowed := float64(perMinute) * elapsed.Seconds() / window.Seconds()
		throttled := 0
		for _, st := range sim.Calls() {
			if st.Status == 429 {
				throttled += st.Count
			}
		}
		b.ReportMetric(float64(calls-throttled)/allowed, "utilization")
		b.ReportMetric(float64(throttled), "429s")
		b.ReportMetric(float64(calls)/elapsed.Seconds(), "calls/s")
	}
}
