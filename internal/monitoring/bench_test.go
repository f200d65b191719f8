package monitoring_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/monitoring"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/jobs"
)

// BenchmarkTaskList measures one page of 20 slice tasks in the UI's API, each payload
// described from its run: the cost the formatter adds to browsing the queues.
func BenchmarkTaskList(b *testing.B) {
	e := start(b, monitoring.Config{})
	if err := e.Inspector.PauseQueue(jobs.QueueCatchup); err != nil {
		b.Fatal(err)
	}
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.Redis.Addr})
	b.Cleanup(func() { _ = client.Close() })
	for i := range 20 {
		m := runstore.Meta{ID: runstore.NewID(time.Now(), uint32(i)), Kind: runstore.KindBackfill, Trigger: "bench",
			Scope: runstore.Scope{Domains: []string{fmt.Sprintf("d%d.example.com", i)}}, CreatedAt: time.Now()}
		if _, _, err := e.Store.Create(e.Ctx, m, ""); err != nil {
			b.Fatal(err)
		}
		task, err := jobs.NewSliceTask(jobs.SlicePayload{RunID: m.ID}, jobs.QueueCatchup)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			b.Fatal(err)
		}
	}
	auth := asOperator(e)
	b.ResetTimer()
	for b.Loop() {
		resp := e.DoRaw(b, http.MethodGet, "/monitoring/api/queues/catchup/pending_tasks?page=1&size=20", nil, auth...)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("pending tasks: %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/list")
}
