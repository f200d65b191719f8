package ratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// BenchmarkUtilizationAtTheServersExactRate runs two limiters (two "processes", four callers
// each) configured at exactly the simulator's limits, 20 a "minute" of 1 s and 200 an "hour"
// of 60 s, for a few windows, once per window kind against a throttle of that kind, and
// reports the share of the allowance the server granted and how many calls it refused. The
// allowance of a run is a full minute's for every minute window that opened in it.
func BenchmarkUtilizationAtTheServersExactRate(b *testing.B) {
	// The margin covers loopback HTTP and goroutine scheduling only.
	const count, timeScale, run, margin = 20, 60, 5 * time.Second, 20 * time.Millisecond
	period := time.Duration(float64(time.Minute) / timeScale)
	for _, kind := range []ratelimit.Window{ratelimit.Sliding, ratelimit.Fixed} {
		b.Run(string(kind), func(b *testing.B) {
			srv := redistest.Start(b)
			for b.Loop() {
				sim, err := skilljarsim.Start(skilljarsim.Config{
					Users: 10, PerMinute: count, PerHour: 10 * count, TimeScale: timeScale, ThrottleWindow: string(kind),
				}, "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				limits := []ratelimit.Limit{{count, period}, {10 * count, 60 * period}}
				key := b.Name() + time.Now().String()
				var limiters []*ratelimit.Limiter
				for range 2 {
					limiters = append(limiters, ratelimit.New(srv.Client(b), key, limits,
						ratelimit.WithWindow(kind), ratelimit.WithMargin(margin)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), run)
				start := time.Now()
				log := callThrough(b, ctx, sim, limiters, 4)
				cancel()
				_ = sim.Close()
				// Windows that opened during the run: a sliding one every period+margin from
				// the first grant, a fixed one margin after each whole multiple of the period.
				end := time.Now()
				windows := int(end.Sub(start)/(period+margin)) + 1
				if kind == ratelimit.Fixed {
					windows = int(end.Add(-margin).Truncate(period).Sub(start.Truncate(period))/period) + 1
				}
				b.ReportMetric(float64(log.statuses[http.StatusOK])/float64(windows*count), "utilization")
				b.ReportMetric(float64(log.statuses[http.StatusTooManyRequests]), "429s")
			}
		})
	}
}
