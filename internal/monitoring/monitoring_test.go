package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/monitoring"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/jobs"
)

// lateHandler is a mount built from the environment apitest.Start returns; it is set
// before the test sends any request.
type lateHandler struct{ h http.Handler }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.h.ServeHTTP(w, r) }

// start runs the real API with the UI mounted at /monitoring.
func start(t testing.TB, cfg monitoring.Config) *apitest.Env {
	t.Helper()
	mount := &lateHandler{}
	e := apitest.Start(t, apitest.Options{Users: 20, Mounts: func(d *httpapi.Deps) { d.Monitoring = mount }})
	cfg.Redis = asynq.RedisClientOpt{Addr: e.Redis.Addr}
	ui, err := monitoring.New(cfg, e.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ui.Close() })
	mount.h = ui
	return e
}

// asOperator is what a browser on the UI sends: Basic credentials with the token as the
// password, and for a change, same-origin fetch metadata.
func asOperator(e *apitest.Env) []string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth("operator", apitest.Token)
	return []string{"Authorization", r.Header.Get("Authorization"), "Sec-Fetch-Site", "same-origin", "Origin", e.Server.URL}
}

func TestUIAndItsAPIAnswerOnlyBehindTheToken(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	if _, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	wrong, _ := http.NewRequest(http.MethodGet, "/", nil)
	wrong.SetBasicAuth("operator", "not-the-token")

	for _, path := range []string{"/monitoring/", "/monitoring/api/queues", "/monitoring/queues/backfill"} {
		for name, header := range map[string][]string{
			"no credentials": nil,
			"wrong password": {"Authorization", wrong.Header.Get("Authorization")},
		} {
			resp := e.DoRaw(t, http.MethodGet, path, nil, header...)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("GET %s with %s: %d %q, want 401 with a Basic challenge", path, name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}

	page := e.DoRaw(t, http.MethodGet, "/monitoring/", nil, asOperator(e)...)
	if page.StatusCode != http.StatusOK || !strings.Contains(string(page.Body), `/monitoring`) || !strings.Contains(string(page.Body), "<div id=\"root\">") {
		t.Fatalf("GET /monitoring/: %d\n%.400s", page.StatusCode, page.Body)
	}
	// A deep link into the single-page app is served the app too.
	if deep := e.DoRaw(t, http.MethodGet, "/monitoring/queues/backfill", nil, asOperator(e)...); deep.StatusCode != http.StatusOK {
		t.Fatalf("GET /monitoring/queues/backfill: %d", deep.StatusCode)
	}
	api := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues", nil, asOperator(e)...)
	var queues struct {
		Queues []struct {
			Queue   string `json:"queue"`
			Pending int    `json:"pending"`
		} `json:"queues"`
	}
	api.JSON(t, &queues)
	if len(queues.Queues) != 1 || queues.Queues[0].Queue != jobs.QueueBackfill || queues.Queues[0].Pending != 1 {
		t.Fatalf("queues %+v, want the backfill queue with the run's first slice", queues.Queues)
	}
}

// pendingTasks lists a queue's pending tasks through the UI's API.
func pendingTasks(t *testing.T, e *apitest.Env, queue string) []map[string]any {
	t.Helper()
	resp := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues/"+queue+"/pending_tasks", nil, asOperator(e)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pending tasks of %s: %d %s", queue, resp.StatusCode, resp.Body)
	}
	var body struct {
		Tasks []map[string]any `json:"tasks"`
	}
	resp.JSON(t, &body)
	return body.Tasks
}

// view decodes what the UI shows as a task's payload or result.
func view(t *testing.T, shown any) map[string]any {
	t.Helper()
	s, ok := shown.(string)
	if !ok {
		t.Fatalf("shown as %T %v, want a string", shown, shown)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("shown %q is not the task view: %v", s, err)
	}
	return v
}

func TestSliceTasksShowTheirRunStreamAndProgress(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	e.StartWorker(t)
	run, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.Ctx, 45*time.Second)
	defer cancel()
	if run, err = e.Engine.Watch(ctx, run.ID, 50*time.Millisecond, nil); err != nil || run.State != runstore.Succeeded {
		t.Fatalf("run ended %v (%v)", run, err)
	}

	// Tasks held in a paused queue: a late copy of the run's first slice, and one for a run
	// that does not exist.
	if err := e.Inspector.PauseQueue(jobs.QueueCatchup); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.Redis.Addr})
	t.Cleanup(func() { _ = client.Close() })
	for _, p := range []jobs.SlicePayload{{RunID: run.ID, Seq: 0}, {RunID: "r20990101t000000deadbeef", Seq: 3}} {
		task, err := jobs.NewSliceTask(p, jobs.QueueCatchup)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task, asynq.TaskID("late-"+p.RunID)); err != nil {
			t.Fatal(err)
		}
	}

	byRun := map[string]map[string]any{}
	for _, task := range pendingTasks(t, e, jobs.QueueCatchup) {
		if task["type"] != jobs.TypeSlice {
			t.Fatalf("task type %v", task["type"])
		}
		v := view(t, task["payload"])
		byRun[v["run_id"].(string)] = v
	}
	got := byRun[run.ID]
	want := map[string]any{
		"run_id": run.ID, "seq": float64(0), "kind": "backfill", "state": "succeeded",
		"stream":   "all " + strconv.Itoa(len(run.Streams)) + " streams done",
		"progress": "100.0% (" + strconv.Itoa(int(run.Progress.Done)) + " of " + strconv.Itoa(int(run.Progress.Total)) + " learners)",
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("payload field %s = %v, want %v (payload %v)", k, got[k], w, got)
		}
	}
	if note, _ := got["note"].(string); !strings.Contains(note, "the run has ended") {
		t.Fatalf("a slice of a finished run is not marked as doing nothing: %v", got)
	}
	if note, _ := byRun["r20990101t000000deadbeef"]["note"].(string); !strings.Contains(note, "no such run") {
		t.Fatalf("a task of an unknown run: %v", byRun["r20990101t000000deadbeef"])
	}
}

func TestCompletedTaskResultsThatNameARunShowIt(t *testing.T) {
	t.Parallel()
	e := start(t, monitoring.Config{})
	run, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// A worker whose tasks write results and stay listed after completing.
	opt := asynq.RedisClientOpt{Addr: e.Redis.Addr}
	srv := asynq.NewServer(opt, asynq.Config{Queues: map[string]int{"results": 1}, TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("report", func(_ context.Context, task *asynq.Task) error {
		_, err := task.ResultWriter().Write(task.Payload())
		return err
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	for _, payload := range []string{`{"run_id":"` + run.ID + `","seq":0}`, `plain words`} {
		if _, err := client.Enqueue(asynq.NewTask("report", []byte(payload)), asynq.Queue("results"), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	var tasks []map[string]any
	for deadline := time.Now().Add(10 * time.Second); len(tasks) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tasks did not complete: %v", tasks)
		}
		resp := e.DoRaw(t, http.MethodGet, "/monitoring/api/queues/results/completed_tasks", nil, asOperator(e)...)
		var body struct {
			Tasks []map[string]any `json:"tasks"`
		}
		resp.JSON(t, &body)
		tasks = body.Tasks
	}
	for _, task := range tasks {
		switch task["payload"] {
		case "plain words":
			if task["result"] != "plain words" {
				t.Fatalf("a result naming no run was changed: %v", task["result"])
			}
		default:
			v := view(t, task["result"])
			if v["run_id"] != run.ID || v["state"] != "queued" || v["stream"] != "not planned yet" {
				t.Fatalf("result naming run %s shown as %v", run.ID, v)
			}
		}
	}
}

func TestReadOnlyRefusesChangesThatTheFullUIMakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		readOnly   bool
		wantStatus int
		wantPaused bool
	}{
		{readOnly: true, wantStatus: http.StatusMethodNotAllowed, wantPaused: false},
		{readOnly: false, wantStatus: http.StatusNoContent, wantPaused: true},
	} {
		e := start(t, monitoring.Config{ReadOnly: tc.readOnly})
		if _, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Trigger: "test"}); err != nil {
			t.Fatal(err)
		}
		resp := e.DoRaw(t, http.MethodPost, "/monitoring/api/queues/backfill:pause", nil, asOperator(e)...)
		if resp.StatusCode != tc.wantStatus {
			t.Fatalf("read-only %v: pausing a queue answered %d %s, want %d", tc.readOnly, resp.StatusCode, resp.Body, tc.wantStatus)
		}
		info, err := e.Inspector.GetQueueInfo(jobs.QueueBackfill)
		if err != nil {
			t.Fatal(err)
		}
		if info.Paused != tc.wantPaused {
			t.Fatalf("read-only %v: queue paused = %v, want %v", tc.readOnly, info.Paused, tc.wantPaused)
		}
		// The app hides its buttons when its page says it is read-only.
		index := e.DoRaw(t, http.MethodGet, "/monitoring/", nil, asOperator(e)...)
		if flag := fmt.Sprintf(`window.FLAG_READ_ONLY="%v"`, tc.readOnly); !strings.Contains(string(index.Body), flag) {
			t.Fatalf("the UI page lacks %s", flag)
		}
	}
}

func TestPrometheusURLFeedsTheUIsCharts(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var queries []string
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Path+" "+r.URL.Query().Get("query"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	}))
	t.Cleanup(prom.Close)
	e := start(t, monitoring.Config{PrometheusURL: prom.URL + "/"})

	index := e.DoRaw(t, http.MethodGet, "/monitoring/", nil, asOperator(e)...)
	if !strings.Contains(strings.ReplaceAll(string(index.Body), `\/`, "/"), prom.URL) {
		t.Fatalf("the UI page does not carry the Prometheus address %s", prom.URL)
	}
	resp := e.DoRaw(t, http.MethodGet, "/monitoring/api/metrics?duration=600", nil, asOperator(e)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %s", resp.StatusCode, resp.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(queries, "\n"), "/api/v1/query_range asynq_queue_size") {
		t.Fatalf("Prometheus was asked %q, want the queue size series", queries)
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	t.Parallel()
	store := runstore.New(nil, runstore.Options{})
	for name, cfg := range map[string]monitoring.Config{
		"no Redis":        {},
		"relative root":   {Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, RootPath: "monitoring"},
		"non-HTTP metric": {Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, PrometheusURL: "prometheus:9090"},
	} {
		if _, err := monitoring.New(cfg, store); err == nil {
			t.Fatalf("%s: New accepted %+v", name, cfg)
		}
	}
}
