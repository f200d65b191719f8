package httpapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/pipeline"
)

// BenchmarkAPI measures the API over real HTTP against a private redis-server: a run read,
// a 50-run list, and a start refused at decoding. Each sub-benchmark sends a fixed number of
// sequential requests per iteration and reports throughput and tail latency, so
// -benchtime 1x gives meaningful numbers.
func BenchmarkAPI(b *testing.B) {
	e := apitest.Start(b, apitest.Options{Users: 5})
	var id string
	for range 50 {
		// Cancelling each run frees its scope for the next.
		run, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Engine.Cancel(e.Ctx, run.ID); err != nil {
			b.Fatal(err)
		}
		id = run.ID
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"get_run", http.MethodGet, "/v1/backfills/" + id, nil, http.StatusOK},
		{"list_50_runs", http.MethodGet, "/v1/backfills?limit=50", nil, http.StatusOK},
		{"refused_start", http.MethodPost, "/v1/backfills", `{"domain": []}`, http.StatusBadRequest},
	}
	const requests = 500
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, requests*b.N)
			start := time.Now()
			for range b.N {
				for range requests {
					t0 := time.Now()
					if r := e.Do(b, tc.method, tc.path, tc.body); r.StatusCode != tc.status {
						b.Fatalf("status %d: %s", r.StatusCode, r.Body)
					}
					lat = append(lat, time.Since(t0))
				}
			}
			elapsed := time.Since(start)
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}
