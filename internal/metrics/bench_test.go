package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/metrics"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// BenchmarkScrape measures one Prometheus scrape over HTTP with the newest 50 runs active
// and three asynq queues: the Redis reads every scrape makes.
func BenchmarkScrape(b *testing.B) {
	rs := redistest.Start(b)
	store := runstore.New(rs.Client(b), runstore.Options{})
	for i := range 50 {
		m := runstore.Meta{ID: runstore.NewID(time.Now(), uint32(i)), Kind: runstore.KindBackfill,
			Scope: runstore.Scope{Domains: []string{fmt.Sprintf("d%d.example.com", i)}}, CreatedAt: time.Now()}
		if _, _, err := store.Create(b.Context(), m, ""); err != nil {
			b.Fatal(err)
		}
	}
	opt := asynq.RedisClientOpt{Addr: rs.Addr}
	client := asynq.NewClient(opt)
	b.Cleanup(func() { _ = client.Close() })
	for _, q := range []string{"critical", "backfill", "catchup"} {
		if _, err := client.Enqueue(asynq.NewTask("backfill:slice", []byte(q)), asynq.Queue(q)); err != nil {
			b.Fatal(err)
		}
	}
	inspector := asynq.NewInspector(opt)
	b.Cleanup(func() { _ = inspector.Close() })
	srv := httptest.NewServer(metrics.New(metrics.Config{Queues: inspector, Runs: store}).Handler())
	b.Cleanup(srv.Close)

	var bytes int64
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("scrape: %d %v", resp.StatusCode, err)
		}
		bytes = n
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scrape")
	b.ReportMetric(float64(bytes), "bytes/scrape")
}
