package main

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/jobs"
)

const apiToken = "e2e-token-0123456789abcdef"

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startAPI runs the api role and waits until it answers /readyz.
func (s *stack) startAPI(t testing.TB, extra ...string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	env := s.env(append([]string{"BACKFILL_HTTP_ADDR=" + addr, "BACKFILL_API_TOKEN=" + apiToken,
		"SALESFORCE_REDIRECT_URL=" + base + "/salesforce/callback"}, extra...)...)
	p := startProcess(t, env, "api")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("api did not become ready at %s", base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cli runs an operator verb against the API and returns its exit status and output.
func (s *stack) cli(t testing.TB, base string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	p := startProcess(t, []string{"PATH=/usr/bin:/bin", "BACKFILL_URL=" + base, "BACKFILL_API_TOKEN=" + apiToken}, args...)
	code := p.wait(t, timeout)
	return code, p.out.String()
}

func TestEndToEndABackfillStartedWithTheCLIAndRunByTwoWorkersEndsExact(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 400, Seed: 21}, salesforcesim.Config{})
	_, base := s.startAPI(t)
	workerEnv := s.env("SKILLJAR_RATE_LIMIT=200/1s", "BACKFILL_SLICE_SECONDS=2")
	startProcess(t, workerEnv, "worker")
	startProcess(t, workerEnv, "worker")

	code, out := s.cli(t, base, 2*time.Minute, "start", "--watch")
	if code != 0 {
		t.Fatalf("backfill start --watch exit status %d:\n%s", code, out)
	}
	if !strings.Contains(out, "verdict: exact") {
		t.Fatalf("watch output lacks the exact verdict:\n%s", out)
	}
	id := strings.Fields(strings.SplitN(out, "\n", 2)[0])[2]
	run, err := s.Store.Get(s.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	s.requireExact(t, run)

	code, out = s.cli(t, base, 30*time.Second, "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Fatalf("list (%d):\n%s", code, out)
	}
	code, out = s.cli(t, base, 30*time.Second, "show", id)
	if code != 0 || !strings.Contains(out, "course_progress") {
		t.Fatalf("show (%d):\n%s", code, out)
	}
	code, out = s.cli(t, base, 30*time.Second, "pause", id)
	if code == 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("pause of a finished run must fail saying why (%d):\n%s", code, out)
	}
}

func TestRotatingTokensAcrossTwoWorkerProcessesNeverBreakTheGrantOrLeakIntoLogs(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 600, Seed: 22}, salesforcesim.Config{SessionTTL: 1500 * time.Millisecond})
	api, _ := s.startAPI(t)
	env := s.env("SKILLJAR_RATE_LIMIT=60/1s", "BACKFILL_SLICE_SECONDS=3", "LOG_LEVEL=debug", "BACKFILL_WORKER_CONCURRENCY=4")
	w1, w2 := startProcess(t, env, "worker"), startProcess(t, env, "worker")
	initial, _, err := s.Connection.Grant(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	run = s.WaitFor(t, run.ID, 3*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(t, run)

	stats := s.Salesforce.AuthStats()
	if stats.InvalidGrants != 0 || stats.ReuseDetected != 0 || stats.Refreshes < 3 {
		t.Fatalf("auth stats %+v: want several refreshes and not one invalid_grant or reuse", stats)
	}
	t.Logf("sessions expired every 1.5s: %d refreshes, %d rotations, 0 invalid_grant", stats.Refreshes, stats.Rotations)

	final, _, err := s.Connection.Grant(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"first access token": initial.AccessToken, "first refresh token": initial.RefreshToken,
		"last access token": final.AccessToken, "last refresh token": final.RefreshToken,
		"client secret": s.Salesforce.ClientSecret(), "Skilljar API key": s.Skilljar.APIKey(),
		"API token": apiToken, "secret key": s.key(),
	}
	for name, p := range map[string]*process{"api": api, "worker 1": w1, "worker 2": w2} {
		logs := p.out.String()
		if len(logs) == 0 {
			t.Fatalf("%s logged nothing: the check below would prove nothing", name)
		}
		for what, v := range secrets {
			if v != "" && strings.Contains(logs, v) {
				t.Errorf("the %s appears in the %s's logs", what, name)
			}
		}
	}
}

func TestRevokedGrantParksTheRunUntilReauthenticationThenItFinishesExact(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 500, Seed: 23}, salesforcesim.Config{})
	_, base := s.startAPI(t)
	startProcess(t, s.env("SKILLJAR_RATE_LIMIT=80/1s", "BACKFILL_SLICE_SECONDS=2"), "worker")
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, run.ID, time.Minute, "some learners done", func(r *runstore.Run) bool { return r.Progress.Done > 50 })
	s.Salesforce.RevokeAll() // the integration user's access is revoked in Salesforce

	parked := s.WaitFor(t, run.ID, time.Minute, "the run to wait for authentication", func(r *runstore.Run) bool {
		return r.State == runstore.WaitingForAuth
	})
	st, err := s.Connection.Status(s.Ctx)
	if err != nil || st.State != connection.NeedsReauth || !strings.Contains(st.LastError, "invalid_grant") {
		t.Fatalf("connection %+v (%v): want needs_reauth naming invalid_grant", st, err)
	}
	s.waitNoSlices(t, run.ID, 30*time.Second)
	if still, _ := s.Store.Get(s.Ctx, run.ID); still.State != runstore.WaitingForAuth || still.Progress.Done != parked.Progress.Done {
		t.Fatalf("a run waiting for auth must not move: %s %d → %s %d", parked.State, parked.Progress.Done, still.State, still.Progress.Done)
	}

	if err := walkConnectFlow(s.Ctx, base, apiToken); err != nil {
		t.Fatal(err)
	}
	run = s.WaitFor(t, run.ID, 2*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(t, run)
	if c, _ := apiclient.New(base, apiToken, nil); c != nil {
		if cs, err := c.Connection(s.Ctx); err != nil || cs.State != connection.Connected {
			t.Fatalf("connection after re-authentication: %+v %v", cs, err)
		}
	}
}

func TestEveryRoleStopsGracefullyOnSIGTERM(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 50, Seed: 24}, salesforcesim.Config{})
	api, base := s.startAPI(t)
	health := startProcess(t, []string{"BACKFILL_HTTP_ADDR=" + strings.TrimPrefix(base, "http://")}, "healthcheck")
	if code := health.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("healthcheck of a live api exit status %d: %s", code, health.out.String())
	}
	scheduler := startProcess(t, s.env("BACKFILL_CATCHUP_CRON=0 */6 * * *"), "scheduler")
	worker := startProcess(t, s.env(), "worker")
	scheduler.waitOutput(t, "scheduler waiting for the next catch-up tick", 30*time.Second)
	worker.waitOutput(t, "worker started", 30*time.Second)
	for name, p := range map[string]*process{"api": api, "scheduler": scheduler, "worker": worker} {
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit status %d after SIGTERM, want 0:\n%s", name, code, tail(p.out.String(), 10))
		}
		if !strings.Contains(p.out.String(), "stopped") {
			t.Errorf("%s did not say it stopped:\n%s", name, tail(p.out.String(), 10))
		}
	}
}

func TestTwoSchedulersEnqueueEachCatchupTickOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 50, Seed: 25}, salesforcesim.Config{})
	env := s.env("BACKFILL_CATCHUP_CRON=*/2 * * * * *", "LOG_LEVEL=debug")
	a, b := startProcess(t, env, "scheduler"), startProcess(t, env, "scheduler")
	// Until both have enqueued a tick and one has met the other's: then each has fired at
	// least once and the two have fired together.
	ticks := func(p *process, msg string) int { return strings.Count(p.out.String(), msg) }
	deadline := time.Now().Add(time.Minute)
	for ticks(a, "catch-up tick enqueued")+ticks(b, "catch-up tick enqueued") < 2 ||
		ticks(a, "another scheduler already enqueued this tick")+ticks(b, "another scheduler already enqueued this tick") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("within a minute the schedulers did not both fire:\n%s\n%s", tail(a.out.String(), 10), tail(b.out.String(), 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.signal(t, syscall.SIGTERM)
	b.signal(t, syscall.SIGTERM)
	a.wait(t, 10*time.Second)
	b.wait(t, 10*time.Second)

	ins := asynq.NewInspector(s.RedisConn)
	defer ins.Close()
	tasks, err := ins.ListPendingTasks("critical")
	if err != nil {
		t.Fatal(err)
	}
	enqueued := strings.Count(a.out.String(), "catch-up tick enqueued") + strings.Count(b.out.String(), "catch-up tick enqueued")
	collided := strings.Count(a.out.String(), "another scheduler already enqueued this tick") +
		strings.Count(b.out.String(), "another scheduler already enqueued this tick")
	if len(tasks) < 2 || len(tasks) != enqueued {
		t.Fatalf("%d tick tasks for %d enqueues: each tick must be one task", len(tasks), enqueued)
	}
	if collided == 0 {
		t.Fatal("neither scheduler met the other's tick: the test did not exercise two schedulers firing together")
	}
	seen := map[string]bool{}
	for _, task := range tasks {
		if seen[task.ID] {
			t.Fatalf("tick %s enqueued twice", task.ID)
		}
		seen[task.ID] = true
	}
	t.Logf("%d ticks enqueued once each; %d attempts refused as duplicates", len(tasks), collided)
}

// waitNoSlices waits until no slice of the run is pending, scheduled, retrying or running:
// from then on nothing can move the run until someone resumes it.
func (s *stack) waitNoSlices(t testing.TB, runID string, timeout time.Duration) {
	t.Helper()
	ins := asynq.NewInspector(s.RedisConn)
	defer ins.Close()
	prefix := "slice:" + runID + ":"
	lists := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		ins.ListPendingTasks, ins.ListScheduledTasks, ins.ListRetryTasks, ins.ListActiveTasks,
	}
	deadline := time.Now().Add(timeout)
	for {
		held := ""
		for queue := range jobs.QueueWeights {
			for _, list := range lists {
				tasks, err := list(queue)
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					t.Fatal(err)
				}
				for _, task := range tasks {
					if strings.HasPrefix(task.ID, prefix) {
						held = task.ID
					}
				}
			}
		}
		if held == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slice %s is still queued or running %s after the run parked", held, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startCollections() pipeline.StartRequest {
	return pipeline.StartRequest{Scope: runstore.Scope{SinkMode: runstore.SinkCollections}, Trigger: "test"}
}
