package salesforce_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// BenchmarkUpsert20k writes 20,000 student rows through each path and reports what the
// engine's sink choice trades: API calls spent per 1,000 rows against rows per second. The
// client runs with its production defaults (bulk polls start at 50ms), the simulator with
// no latency and with 50ms per request.
func BenchmarkUpsert20k(b *testing.B) {
	const rows = 20000
	recs := make([]salesforce.Record, rows)
	for i := range recs {
		recs[i] = salesforce.Record{
			extID:                     fmt.Sprintf("s-%06d", i),
			"skilljar__Email__c":      fmt.Sprintf("learner%d@example.com", i),
			"skilljar__First_Name__c": "Ada",
			"skilljar__Last_Name__c":  fmt.Sprintf("Lovelace %d", i),
		}
	}
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		for _, path := range []string{"collections", "bulk"} {
			b.Run(fmt.Sprintf("%s/latency=%s", path, latency), func(b *testing.B) {
				sim := startSim(b, salesforcesim.Config{Latency: latency, DailyLimit: 1 << 30})
				calls := newCalls()
				c := newClient(b, salesforce.Config{Tokens: newSimTokens(sim), Observer: calls})
				upsert := c.Upsert
				if path == "bulk" {
					upsert = c.BulkUpsert
				}
				b.ResetTimer()
				for range b.N {
					res, err := upsert(context.Background(), student, extID, recs)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range res {
						if !r.Success {
							b.Fatalf("%s failed: %+v", r.ExternalID, r.Errors)
						}
					}
				}
				b.StopTimer()
				written := float64(rows * b.N)
				b.ReportMetric(float64(calls.total())/written*1000, "calls/1k_rows")
				b.ReportMetric(written/b.Elapsed().Seconds(), "rows/s")
				if sim.Count(student) != rows {
					b.Fatalf("org has %d students; want %d", sim.Count(student), rows)
				}
			})
		}
	}
}
