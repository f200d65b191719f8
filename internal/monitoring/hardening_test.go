package monitoring_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/monitoring"
	"github.com/sjbackfill/backfill/internal/pipeline"
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

// A queue name asynq cannot hold is the client's mistake: a 4xx, never asynqmon's 500.
func TestQueueNamesThatCannotExistAnswer4xx(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	if _, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/monitoring/api/queues/%00", "/monitoring/api/queues/%20", "/monitoring/api/queues/nosuch",
		"/monitoring/api/queues/%00/pending_tasks", "/monitoring/api/queues/nosuch/pending_tasks",
		"/monitoring/api/queues/%00/tasks/x", "/monitoring/api/queues/%ff%fe", "/monitoring/api/queues/nosuch:pause",
	} {
		r := e.DoRaw(t, http.MethodGet, path, nil, asOperator(e)...)
		if r.StatusCode < 400 || r.StatusCode > 499 {
			t.Errorf("GET %s: %d, want a 4xx; body %.200s", path, r.StatusCode, r.Body)
		}
	}
	// A real queue still answers.
	if r := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues/backfill", nil, asOperator(e)...); r.StatusCode != http.StatusOK {
		t.Fatalf("GET the backfill queue: %d %.200s", r.StatusCode, r.Body)
	}
}
