package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/stacktest"
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
	if code == 0 {
		// The tests run the roles in-process too: none may leave a goroutine behind.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// stack is the test stack with a Salesforce grant stored the way the OAuth callback stores
// it, for the production roles the tests run as processes.
type stack struct{ *stacktest.Stack }

func newStack(t testing.TB, sjc skilljarsim.Config, sfc salesforcesim.Config) *stack {
	t.Helper()
	return newStackWith(t, stacktest.Options{Skilljar: sjc, Salesforce: sfc})
}

// newStackWith is newStack with every option of the stack, such as its Redis.
func newStackWith(t testing.TB, o stacktest.Options) *stack {
	t.Helper()
	s := &stack{stacktest.Start(t, o)}
	s.ConnectSalesforce(t)
	return s
}

// key is the secret key the roles seal the grant with, as BACKFILL_SECRET_KEY spells it.
func (s *stack) key() string { return hex.EncodeToString(s.SecretKey) }

// env is the environment a production role of this stack runs with.
func (s *stack) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"REDIS_URL=" + s.RedisURL,
		"SKILLJAR_BASE_URL=" + s.Skilljar.URL(), "SKILLJAR_API_KEY=" + s.Skilljar.APIKey(),
		"SALESFORCE_ENVIRONMENT=" + s.Salesforce.LoginURL(), "SALESFORCE_LOGIN_ORIGINS=" + s.Salesforce.LoginURL(),
		"SALESFORCE_CLIENT_ID=" + s.Salesforce.ClientID(), "SALESFORCE_CLIENT_SECRET=" + s.Salesforce.ClientSecret(),
		"BACKFILL_SECRET_KEY=" + s.key(), "LOG_LEVEL=info",
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

// waitOutput waits until the process has printed text, the sign that it got that far.
func (p *process) waitOutput(t testing.TB, text string, timeout time.Duration) {
	t.Helper()
	p.waitUntil(t, timeout, "print "+strconv.Quote(text), func(out string) bool { return strings.Contains(out, text) })
}

// waitUntil polls the process's output until cond holds for it.
func (p *process) waitUntil(t testing.TB, timeout time.Duration, what string, cond func(out string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(p.out.String()) {
		select {
		case <-p.done:
			if !cond(p.out.String()) {
				t.Fatalf("process exited before it did %s:\n%s", what, tail(p.out.String(), 20))
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("process did not %s within %s:\n%s", what, timeout, tail(p.out.String(), 20))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *stack) requireExact(t testing.TB, run *runstore.Run) {
	t.Helper()
	if run.State != runstore.Succeeded || run.Summary == nil || run.Summary.Verdict != "exact" {
		t.Fatalf("run ended %s (%s) with summary %+v", run.State, run.Error, run.Summary)
	}
	s.RequireExactData(t)
}
