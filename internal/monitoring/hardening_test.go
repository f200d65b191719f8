package monitoring_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/monitoring"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/jobs"
)

// The UI's buttons delete, run and archive tasks and pause queues: another site must not
// frame it and trick a click, so every answer forbids framing, in both dialects browsers read.
func TestEveryAnswerOfTheUIForbidsFraming(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	for _, path := range []string{"/monitoring/", "/monitoring/queues/backfill", "/monitoring/api/queues", "/monitoring/api/queues/nosuch"} {
		r := e.DoRaw(t, http.MethodGet, path, nil, asOperator(e)...)
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s (%d): Content-Security-Policy %q has no frame-ancestors 'none'", path, r.StatusCode, csp)
		}
		if xfo := r.Header.Get("X-Frame-Options"); xfo != "DENY" {
			t.Errorf("GET %s (%d): X-Frame-Options %q, want DENY", path, r.StatusCode, xfo)
		}
	}
}

// A queue or task that does not exist is the client's mistake: a 4xx, never asynqmon's 500.
func TestQueueNamesThatCannotExistAnswer4xx(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	if _, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, rq := range []struct{ method, path string }{
		{"GET", "/monitoring/api/queues/%00"}, {"GET", "/monitoring/api/queues/%20"}, {"GET", "/monitoring/api/queues/nosuch"},
		{"GET", "/monitoring/api/queues/%00/pending_tasks"}, {"GET", "/monitoring/api/queues/nosuch/pending_tasks"},
		{"GET", "/monitoring/api/queues/%00/tasks/x"}, {"GET", "/monitoring/api/queues/%ff%fe"}, {"POST", "/monitoring/api/queues/nosuch:pause"},
		{"GET", "/monitoring/api/queues/backfill:resume"},
		// A task that is not there is the client's mistake too.
		{"DELETE", "/monitoring/api/queues/backfill/pending_tasks/%00"}, {"POST", "/monitoring/api/queues/backfill/scheduled_tasks/%ff:run"},
		{"POST", "/monitoring/api/queues/backfill/archived_tasks/nosuch:run"},
	} {
		r := e.DoRaw(t, rq.method, rq.path, nil, asOperator(e)...)
		if r.StatusCode < 400 || r.StatusCode > 499 {
			t.Errorf("%s %s: %d, want a 4xx; body %.200s", rq.method, rq.path, r.StatusCode, r.Body)
		}
	}
	// A real queue and a real task still answer.
	if r := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues/backfill", nil, asOperator(e)...); r.StatusCode != http.StatusOK {
		t.Fatalf("GET the backfill queue: %d %.200s", r.StatusCode, r.Body)
	}
	pending, err := e.Inspector.ListPendingTasks(jobs.QueueBackfill)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending tasks: %d (%v)", len(pending), err)
	}
	if r := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues/backfill/tasks/"+pending[0].ID, nil, asOperator(e)...); r.StatusCode != http.StatusOK {
		t.Fatalf("GET the pending slice task: %d %.200s", r.StatusCode, r.Body)
	}
}
