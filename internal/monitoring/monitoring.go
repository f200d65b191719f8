// Package monitoring mounts the asynq web UI (asynqmon) at /monitoring, showing each slice
// task as the run, stream and progress it advances.
package monitoring

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/jobs"
)

// RunReader reads a run; *runstore.Store is one.
type RunReader interface {
	Get(ctx context.Context, id string) (*runstore.Run, error)
}

// Config configures the UI.
type Config struct {
	// Redis is asynq's Redis, as asynq.ParseRedisURI reads REDIS_URL. Required.
	Redis asynq.RedisConnOpt
	// ReadOnly (BACKFILL_MONITORING_READONLY) makes the UI view-only: its API refuses every
	// method but GET, so nobody can delete, run, archive or cancel tasks through it.
	ReadOnly bool
	// PrometheusURL (PROMETHEUS_URL), when set, is the Prometheus server the UI charts
	// queue history from: the asynq_* series that package metrics exports.
	PrometheusURL string
	// RootPath is where the UI is mounted. Defaults to "/monitoring", where httpapi mounts it.
	RootPath string
	// LookupTimeout bounds reading the run of one task shown. Defaults to 2s.
	LookupTimeout time.Duration
}

// Handler serves asynqmon. It has no authentication of its own: mount it behind httpapi
// (Deps.Monitoring), which requires the API token and refuses cross-origin changes.
type Handler struct {
	ui        *asynqmon.HTTPHandler
	inspector *asynq.Inspector
	// queuesAPI is the path prefix of the UI's per-queue API routes.
	queuesAPI string
}

// New builds the UI. Close it to release its Redis connections.
func New(cfg Config, runs RunReader) (*Handler, error) {
	cfg.RootPath = cmp.Or(cfg.RootPath, "/monitoring")
	cfg.LookupTimeout = cmp.Or(cfg.LookupTimeout, 2*time.Second)
	switch {
	case cfg.Redis == nil:
		return nil, errors.New("monitoring: Config.Redis is required")
	case runs == nil:
		return nil, errors.New("monitoring: a RunReader is required")
	case !strings.HasPrefix(cfg.RootPath, "/"):
		return nil, fmt.Errorf("monitoring: RootPath %q must start with /", cfg.RootPath)
	}
	if cfg.PrometheusURL != "" {
		if u, err := url.Parse(cfg.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("monitoring: PrometheusURL %q is not an http(s) URL such as http://prometheus:9090", cfg.PrometheusURL)
		}
	}
	f := &formatter{runs: runs, timeout: cfg.LookupTimeout}
	ui := asynqmon.New(asynqmon.Options{
		RootPath:          cfg.RootPath,
		RedisConnOpt:      cfg.Redis,
		ReadOnly:          cfg.ReadOnly,
		PrometheusAddress: strings.TrimRight(cfg.PrometheusURL, "/"),
		PayloadFormatter:  asynqmon.PayloadFormatterFunc(f.payload),
		ResultFormatter:   asynqmon.ResultFormatterFunc(f.result),
	})
	return &Handler{ui: ui, inspector: asynq.NewInspector(cfg.Redis), queuesAPI: strings.TrimRight(cfg.RootPath, "/") + "/api/queues/"}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The UI's buttons delete, run and archive tasks and pause queues, so no other site may
	// frame it to trick a click: CSP for current browsers, X-Frame-Options for older ones.
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	if queue, task, ok := h.taskRef(r); ok {
		if status, msg := h.check(queue, task); status != 0 {
			http.Error(w, msg, status)
			return
		}
	}
	h.ui.ServeHTTP(w, r)
}

// taskRef reads the queue, and the task when there is one, that a per-queue API request
// names: /api/queues/{queue}[:pause|:resume] or /api/queues/{queue}/{state}_tasks/{id}[:action].
func (h *Handler) taskRef(r *http.Request) (queue, task string, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, h.queuesAPI)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	queue = parts[0]
	if len(parts) == 1 && r.Method == http.MethodPost {
		queue = strings.TrimSuffix(strings.TrimSuffix(queue, ":pause"), ":resume")
	}
	if len(parts) == 3 {
		// Task ids hold colons (slice:run:seq), so only the actions asynqmon routes are cut.
		task = parts[2]
		if r.Method == http.MethodPost {
			for _, action := range []string{":run", ":archive", ":cancel"} {
				task = strings.TrimSuffix(task, action)
			}
		}
	}
	return queue, task, true
}

// check answers a status and message for a queue or task that does not exist; asynqmon
// itself answers 500 for those, as if the server were at fault.
func (h *Handler) check(queue, task string) (int, string) {
	if strings.TrimSpace(queue) == "" {
		return http.StatusBadRequest, "a queue name must contain one or more characters"
	}
	queues, err := h.inspector.Queues()
	if err != nil {
		// Redis is down: asynqmon reports that itself, as the 500 it is.
		return 0, ""
	}
	if !slices.Contains(queues, queue) {
		known := "no queue exists yet"
		if len(queues) > 0 {
			known = "the queues are " + strings.Join(queues, ", ")
		}
		return http.StatusNotFound, fmt.Sprintf("queue %q does not exist; %s", queue, known)
	}
	if task == "" {
		return 0, ""
	}
	if _, err := h.inspector.GetTaskInfo(queue, task); errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return http.StatusNotFound, fmt.Sprintf("task %q is not in queue %q (it may have finished)", task, queue)
	}
	return 0, ""
}

// Close releases the UI's Redis connections.
func (h *Handler) Close() error { return errors.Join(h.ui.Close(), h.inspector.Close()) }

// formatter describes tasks by the run they advance, read from the run store as the UI
// lists them.
type formatter struct {
	runs    RunReader
	timeout time.Duration
}

// taskView is what the UI shows as a slice task's payload, or as a result that names a run:
// the task's own fields first, then the run as it is now.
type taskView struct {
	RunID    string `json:"run_id"`
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind,omitempty"`
	State    string `json:"state,omitempty"`
	Stream   string `json:"stream,omitempty"`
	Progress string `json:"progress,omitempty"`
	// Note explains a task that will do nothing, or a run that could not be read.
	Note string `json:"note,omitempty"`
}

func (f *formatter) payload(taskType string, payload []byte) string {
	if taskType == jobs.TypeSlice {
		if p, err := jobs.ParseSlicePayload(payload); err == nil {
			return f.describe(p)
		}
	}
	return asynqmon.DefaultPayloadFormatter.FormatPayload(taskType, payload)
}

// result describes a result that names a run as the payload does; any other result is
// shown as it is.
func (f *formatter) result(taskType string, result []byte) string {
	if p, err := jobs.ParseSlicePayload(result); err == nil {
		return f.describe(p)
	}
	return asynqmon.DefaultResultFormatter.FormatResult(taskType, result)
}

func (f *formatter) describe(p jobs.SlicePayload) string {
	v := taskView{RunID: p.RunID, Seq: p.Seq}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	run, err := f.runs.Get(ctx, p.RunID)
	switch {
	case errors.Is(err, runstore.ErrNotFound):
		v.Note = "no such run: this task will do nothing"
	case err != nil:
		v.Note = "the run could not be read: " + err.Error()
	default:
		v.Kind, v.State = string(run.Kind), string(run.State)
		v.Stream = streamOf(run)
		v.Progress = progressOf(run.Progress)
		switch {
		case run.State.Terminal():
			v.Note = "the run has ended, so this task will do nothing"
		case p.Seq < run.Seq:
			v.Note = fmt.Sprintf("stale: the run has moved on to slice %d, so this task will do nothing", run.Seq)
		case !run.State.Runnable():
			v.Note = "the run is " + string(run.State) + ": this task will do nothing, and resuming the run enqueues a new one"
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("run %s slice %d", p.RunID, p.Seq)
	}
	return string(b)
}

// streamOf names the stream the run is on, with its place among the run's streams.
func streamOf(run *runstore.Run) string {
	switch n := len(run.Streams); {
	case n == 0:
		return "not planned yet"
	case run.Current >= n:
		return fmt.Sprintf("all %d streams done", n)
	default:
		return fmt.Sprintf("%s (%d of %d)", run.Streams[run.Current].Name, run.Current+1, n)
	}
}

func progressOf(p runstore.Progress) string {
	if p.Total == 0 {
		return "not measured yet"
	}
	return fmt.Sprintf("%.1f%% (%d of %d learners)", p.Percent, p.Done, p.Total)
}
