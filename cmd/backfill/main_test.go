package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// binary is the backfill command built once for the tests that run it as a real process.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "backfill-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "backfill")
	args := []string{"build", "-o", binary, "."}
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// Tests run the binary with the race detector; benchmarks measure it without.
		args = []string{"build", "-race", "-o", binary, "."}
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build backfill:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// stack is a private Redis and both simulators, with a Salesforce grant stored the way the
// OAuth callback stores it.
type stack struct {
	ctx context.Context
	// redis is the stack's redis-server when it started one; redisURL reaches Redis.
	redis    *redistest.Server
	redisURL string
	sj       *skilljarsim.Sim
	sf       *salesforcesim.Sim
	key      string
	conn     *connection.Store
	store    *runstore.Store
	engine   *pipeline.Engine
}

func newStack(t testing.TB, sjc skilljarsim.Config, sfc salesforcesim.Config) *stack {
	t.Helper()
	return newStackWith(t, sjc, sfc, redistest.Options{})
}

// newStackWith is newStack on a Redis started with opts.
func newStackWith(t testing.TB, sjc skilljarsim.Config, sfc salesforcesim.Config, opts redistest.Options) *stack {
	t.Helper()
	r := redistest.StartWith(t, opts)
	s := newStackOn(t, sjc, sfc, r.URL(), r.Client(t), asynq.RedisClientOpt{Addr: r.Addr})
	s.redis = r
	return s
}

// newStackOn is newStack on a Redis deployment the caller started: its REDIS_URL, a client
// and asynq's options for it.
func newStackOn(t testing.TB, sjc skilljarsim.Config, sfc salesforcesim.Config, redisURL string, rdb redis.UniversalClient, opt asynq.RedisConnOpt) *stack {
	t.Helper()
	s := &stack{ctx: context.Background(), redisURL: redisURL}
	var err error
	if s.sj, err = skilljarsim.Start(sjc, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.sj.Close() })
	if s.sf, err = salesforcesim.Start(sfc, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.sf.Close() })
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	s.key = hex.EncodeToString(b)
	if s.conn, err = connection.NewStore(rdb, b, ""); err != nil {
		t.Fatal(err)
	}
	tok := s.sf.MintTokens("api refresh_token")
	if err := s.conn.Connect(s.ctx, connection.Grant{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, InstanceURL: tok.InstanceURL,
		IdentityURL: tok.ID, LoginURL: s.sf.LoginURL(), IssuedAt: time.Now(),
	}, connection.Status{}); err != nil {
		t.Fatal(err)
	}
	s.store = runstore.New(rdb, runstore.Options{})
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	if s.engine, err = pipeline.New(pipeline.Config{}, pipeline.Deps{Store: s.store, Enqueuer: client, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	return s
}

// env is the environment a production role of this stack runs with.
func (s *stack) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"REDIS_URL=" + s.redisURL,
		"SKILLJAR_BASE_URL=" + s.sj.URL(), "SKILLJAR_API_KEY=" + s.sj.APIKey(),
		"SALESFORCE_ENVIRONMENT=" + s.sf.LoginURL(), "SALESFORCE_LOGIN_ORIGINS=" + s.sf.LoginURL(),
		"SALESFORCE_CLIENT_ID=" + s.sf.ClientID(), "SALESFORCE_CLIENT_SECRET=" + s.sf.ClientSecret(),
		"BACKFILL_SECRET_KEY=" + s.key, "LOG_LEVEL=info",
	}, extra...)
}

// process is a running backfill process with its output captured.
type process struct {
	cmd  *exec.Cmd
	out  *logging.Buffer
	done chan struct{}
}

func startProcess(t testing.TB, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), out: &logging.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of backfill %s:\n%s", strings.Join(args, " "), tail(p.out.String(), 40))
		}
	})
	return p
}

func (p *process) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func (p *process) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s", timeout)
		return -1
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *stack) waitRun(t testing.TB, id string, timeout time.Duration, what string, cond func(*runstore.Run) bool) *runstore.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		run, err := s.store.Get(s.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			events, _ := s.store.Events(s.ctx, id, 10)
			t.Fatalf("run %s: %s did not happen within %s: state %s progress %+v events %+v", id, what, timeout, run.State, run.Progress, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) requireExact(t testing.TB, run *runstore.Run) {
	t.Helper()
	if run.State != runstore.Succeeded || run.Summary == nil || run.Summary.Verdict != "exact" {
		t.Fatalf("run ended %s (%s) with summary %+v", run.State, run.Error, run.Summary)
	}
	if rep := simcheck.Compare(s.sj.Org(), s.sf); !rep.Exact() {
		t.Fatalf("Salesforce differs from the source:\n%s", rep)
	}
}
