package ratelimit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
)

// slidingLog throttles like Django REST framework's SimpleRateThrottle: a request is refused
// when the window ending at its arrival already holds count accepted requests.
type slidingLog struct {
	count  int
	period time.Duration

	mu       sync.Mutex
	history  []time.Time
	accepted int
	refused  int
}

func (s *slidingLog) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	now := time.Now()
	for len(s.history) > 0 && !s.history[0].After(now.Add(-s.period)) {
		s.history = s.history[1:]
	}
	ok := len(s.history) < s.count
	if ok {
		s.history = append(s.history, now)
		s.accepted++
	} else {
		s.refused++
	}
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	time.Sleep(20 * time.Millisecond) // a little service time, so callers overlap
}

// BenchmarkUtilizationAtTheServersExactRate runs two limiters (two "processes", four callers
// each) configured at exactly the server's limit against a sliding-window server for a few
// seconds and reports the share of the server's allowance they used and how many calls the
// server refused.
func BenchmarkUtilizationAtTheServersExactRate(b *testing.B) {
	srv := redistest.Start(b)
	limit := ratelimit.Limit{Count: 20, Period: time.Second}
	server := &slidingLog{count: limit.Count, period: limit.Period}
	ts := httptest.NewServer(server)
	defer ts.Close()

	const run = 5 * time.Second
	for b.Loop() {
		key := b.Name() + time.Now().String()
		ctx, cancel := context.WithTimeout(context.Background(), run)
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			l := ratelimit.New(srv.Client(b), key, []ratelimit.Limit{limit})
			for range 4 {
				wg.Go(func() {
					for {
						if _, err := l.Wait(ctx); err != nil {
							return
						}
						resp, err := ts.Client().Get(ts.URL)
						if err != nil {
							b.Error(err)
							return
						}
						resp.Body.Close()
					}
				})
			}
		}
		wg.Wait()
		cancel()
		elapsed := time.Since(start)
		server.mu.Lock()
		allowed := float64(limit.Count) * elapsed.Seconds() / limit.Period.Seconds()
		b.ReportMetric(float64(server.accepted)/allowed, "utilization")
		b.ReportMetric(float64(server.refused), "429s")
		server.mu.Unlock()
	}
}
