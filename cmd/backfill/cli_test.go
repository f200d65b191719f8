package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// runBinary runs the built binary to its end with exactly env and returns its exit status
// and its two streams apart.
func runBinary(t *testing.T, env []string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	code, stdout, stderr, err := execBinary(env, timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return code, stdout, stderr
}

// execBinary is runBinary for goroutines, which must not end the test themselves.
func execBinary(env []string, timeout time.Duration, args ...string) (int, string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return 0, "", "", fmt.Errorf("backfill %s: %w", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		return 0, "", "", fmt.Errorf("backfill %s did not end within %s:\n%s%s", strings.Join(args, " "), timeout, stdout.String(), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String(), nil
}

// commandPaths lists every command of the binary, subcommands included, as the words that
// name it: a verb added later is covered without touching this test.
func commandPaths() [][]string {
	root := commands(context.Background(), io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(slices.Clone(path), sub.Name())
			out = append(out, p)
			walk(sub, p)
		}
	}
	walk(root, nil)
	return out
}

// With nothing in the environment (no token, no Redis), --help, -h and help VERB print the
// usage and exit 0, and never start a role or run a check: a role would exit 2 on REDIS_URL.
func TestEveryVerbAndRoleHelpsWithAnEmptyEnvironment(t *testing.T) {
	t.Parallel()
	paths := commandPaths()
	for _, want := range []string{"api", "worker", "scheduler", "healthcheck", "dev", "demo", "sim", "start", "show",
		"watch", "rejected", "redrive", "events", "settings", "connection", "version", "completion"} {
		if !slices.ContainsFunc(paths, func(p []string) bool { return len(p) == 1 && p[0] == want }) {
			t.Errorf("no %s command", want)
		}
	}
	var runs [][]string
	for _, path := range paths {
		runs = append(runs, append(slices.Clone(path), "--help"))
	}
	// -h and help VERB take the same path through cobra: a few of each show they work.
	runs = append(runs, []string{"api", "-h"}, []string{"start", "-h"}, []string{"help", "worker"}, []string{"help", "settings", "put"})
	// The race detector's runtime waits a second at exit: run the helps side by side.
	type result struct {
		code           int
		stdout, stderr string
		err            error
	}
	results := make([]result, len(runs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, args := range runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := &results[i]
			r.code, r.stdout, r.stderr, r.err = execBinary([]string{}, time.Minute, args...)
		})
	}
	wg.Wait()
	for i, args := range runs {
		path := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "-h" || a == "--help" })
		if len(path) > 1 && path[0] == "help" {
			path = path[1:]
		}
		r, name := results[i], "backfill "+strings.Join(path, " ")
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, name) || r.stderr != "" {
			t.Errorf("backfill %s: exit %d, want 0 with the usage of %s\nstdout:\n%s\nstderr:\n%s",
				strings.Join(args, " "), r.code, name, r.stdout, r.stderr)
		}
	}
	code, stdout, _ := runBinary(t, []string{}, 30*time.Second, "--help")
	if code != 0 || !strings.Contains(stdout, "Environment:") || !strings.Contains(stdout, "REDIS_URL") {
		t.Errorf("backfill --help (%d) does not list the environment:\n%s", code, stdout)
	}
	code, _, stderr := runBinary(t, []string{}, 30*time.Second)
	if code != exitUsage || !strings.Contains(stderr, "Usage:") {
		t.Errorf("a bare backfill exits %d, want %d with the usage on stderr", code, exitUsage)
	}
}

// Help shows the defaults each command really uses, and documents what the README names.
func TestHelpShowsEachCommandsOwnDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"demo", "-h"}, []string{"(default 3000)", "(default 6000)", `"127.0.0.1:0"`, `(default "warn")`, "--serve"}},
		{[]string{"dev", "-h"}, []string{"(default 1000)", "(default 600)", "(default 5000)", `"127.0.0.1:8080"`, "BACKFILL_HTTP_ADDR"}},
		{[]string{"sim", "-h"}, []string{"(default 1000)", `"127.0.0.1:8081"`, "--org-profile"}},
		{[]string{"start", "--help"}, []string{"--idempotency-key", "--domains", "--objects", "--dry-run", "--sink-mode", "--watch"}},
		{[]string{"watch", "--help"}, []string{"3  ended with rejected records", "5  cancelled"}},
		{[]string{"rejected", "--help"}, []string{"--csv"}},
		{[]string{"worker", "--help"}, []string{"BACKFILL_WORKER_CONCURRENCY", "REDIS_URL"}},
	} {
		code, stdout, _ := runBinary(t, []string{}, 30*time.Second, tc.args...)
		for _, w := range tc.want {
			if code != 0 || !strings.Contains(stdout, w) {
				t.Errorf("backfill %s (exit %d) lacks %q:\n%s", strings.Join(tc.args, " "), code, w, stdout)
			}
		}
	}
	// A role's help lists only what the role reads.
	if _, stdout, _ := runBinary(t, []string{}, 30*time.Second, "scheduler", "--help"); strings.Contains(stdout, "SKILLJAR_API_KEY") {
		t.Errorf("the scheduler's help lists SKILLJAR_API_KEY, which it never reads:\n%s", stdout)
	}
}

func TestUsageErrorsExitTwoAndSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	env := []string{"BACKFILL_API_TOKEN=0123456789abcdef0123", "BACKFILL_URL=http://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nonsense"}, `unknown command "nonsense"`},
		{[]string{"show"}, "accepts 1 arg(s), received 0"},
		{[]string{"start", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"rejected", "x", "--csv", "--json"}, "csv json"},
		{[]string{"connection", "disconnect"}, "add --yes"},
	} {
		code, _, stderr := runBinary(t, env, 30*time.Second, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("backfill %s: exit %d, stderr %q; want %d saying %q", strings.Join(tc.args, " "), code, stderr, exitUsage, tc.want)
		}
	}
	if code, _, stderr := runBinary(t, []string{}, 30*time.Second, "show", "some-id"); code != exitUsage || !strings.Contains(stderr, "BACKFILL_API_TOKEN is not set") {
		t.Errorf("show without a token: exit %d, %q", code, stderr)
	}
}

func TestVersionNamesTheModule(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runBinary(t, []string{}, 30*time.Second, "version")
	if code != 0 || !strings.Contains(stdout, "module  github.com/sjbackfill/backfill") || !strings.Contains(stdout, "commit  ") {
		t.Fatalf("version (%d):\n%s", code, stdout)
	}
}

func TestCompletionScriptsForEveryShell(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "__start_backfill", "zsh": "#compdef backfill", "fish": "complete -c backfill"} {
		code, stdout, _ := runBinary(t, []string{}, 30*time.Second, "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("completion %s (%d) lacks %q", shell, code, want)
		}
	}
}

// Every configuration problem in one go, each naming its variable, and not a line of
// plain text among the JSON logs when go-redis cannot reach Redis.
func TestRolesReportEveryProblemAtOnceAndLogOnlyJSON(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runBinary(t, []string{}, 30*time.Second, "api")
	for _, v := range []string{"REDIS_URL", "SKILLJAR_API_KEY", "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REDIRECT_URL", "BACKFILL_API_TOKEN", "BACKFILL_SECRET_KEY"} {
		if !strings.Contains(stderr, "\n  "+v+": is required for the api role") {
			t.Errorf("api with an empty environment does not name %s:\n%s", v, stderr)
		}
	}
	if code != exitUsage || !strings.Contains(stderr, "7 configuration problems") || stdout != "" {
		t.Errorf("api with an empty environment: exit %d, stderr:\n%s", code, stderr)
	}

	closed := freeAddr(t) // nothing listens there
	env := []string{"REDIS_URL=redis://" + closed + "/0", "SKILLJAR_API_KEY=k", "SALESFORCE_CLIENT_ID=id", "SALESFORCE_CLIENT_SECRET=s",
		"BACKFILL_SECRET_KEY=" + strings.Repeat("ab", 32)}
	code, _, stderr = runBinary(t, env, time.Minute, "worker")
	if code != exitFailure {
		t.Errorf("a worker without Redis exits %d, want %d", code, exitFailure)
	}
	sawRedis := false
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a plain-text line among the JSON logs: %q", line)
			continue
		}
		sawRedis = sawRedis || rec["component"] == "redis"
	}
	if !sawRedis {
		t.Errorf("no go-redis line in the logs, so the check above proves nothing:\n%s", stderr)
	}
}

// A worker's and a scheduler's healthcheck read their heartbeat: absent before the role
// runs, present while it does, gone the moment it stops.
func TestHealthcheckFollowsTheWorkersAndSchedulersHeartbeat(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 10, Seed: 31}, salesforcesim.Config{})
	probeEnv := []string{"REDIS_URL=" + s.RedisURL}
	for _, role := range []string{"worker", "scheduler"} {
		if code, _, stderr := runBinary(t, probeEnv, 30*time.Second, "healthcheck", role); code != exitFailure || !strings.Contains(stderr, "no heartbeat") {
			t.Fatalf("healthcheck %s before it runs: exit %d, %q", role, code, stderr)
		}
		p := startProcess(t, s.env(), role)
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, stderr := runBinary(t, probeEnv, 30*time.Second, "healthcheck", role)
			if code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("healthcheck %s of a running %s: exit %d, %q", role, role, code, stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		p.signal(t, syscall.SIGTERM)
		p.wait(t, 30*time.Second)
		if code, _, _ := runBinary(t, probeEnv, 30*time.Second, "healthcheck", role); code != exitFailure {
			t.Fatalf("healthcheck %s after it stopped: exit %d, want %d", role, code, exitFailure)
		}
	}
}

func TestDevListensOnBACKFILL_HTTP_ADDR(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	p := startProcess(t, []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "BACKFILL_HTTP_ADDR=" + addr},
		"dev", "--skilljar-addr", "127.0.0.1:0", "--salesforce-addr", "127.0.0.1:0", "--users", "10")
	p.waitOutput(t, "http://"+addr+"/", 60*time.Second)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz on BACKFILL_HTTP_ADDR answered %s", resp.Status)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("dev exit status %d after SIGTERM", code)
	}
}

// show takes its flags after the run id, as the README writes it, and before; a cancelled
// run's watch exits 5, a failed one's 1.
func TestShowTakesFlagsAfterTheIDAndWatchExitsWithTheOutcome(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 40, Seed: 32}, salesforcesim.Config{})
	_, base := s.startAPI(t)
	run, _, err := s.Engine.Start(s.Ctx, startCollections())
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"show", run.ID, "--json"}, {"show", "--json", run.ID}, {"show", "-json", run.ID}} {
		code, out := s.cli(t, base, 30*time.Second, args...)
		var got runstore.Run
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.ID != run.ID {
			t.Fatalf("backfill %s (%d): %v\n%s", strings.Join(args, " "), code, err, out)
		}
	}
	// The shell completes a run id from the recent runs.
	if code, out := s.cli(t, base, 30*time.Second, "__complete", "show", ""); code != 0 || !strings.Contains(out, run.ID+"\tbackfill queued") {
		t.Fatalf("completion of show's run id (%d):\n%s", code, out)
	}
	if code, out := s.cli(t, base, 30*time.Second, "cancel", run.ID); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel (%d):\n%s", code, out)
	}
	if code, out := s.cli(t, base, 30*time.Second, "watch", run.ID); code != exitCancelled {
		t.Fatalf("watch of a cancelled run exits %d, want %d:\n%s", code, exitCancelled, out)
	}

	// Settings round-trip through a file; invalid ones list every problem and save nothing.
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(`{"sink_mode": "bulk"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"create_contacts": true, "contact_match": "oldest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := s.cli(t, base, 30*time.Second, "settings", "put", good); code != 0 || !regexp.MustCompile(`sink mode\s+bulk`).MatchString(out) {
		t.Fatalf("settings put (%d):\n%s", code, out)
	}
	if code, out := s.cli(t, base, 30*time.Second, "settings", "put", bad); code != exitFailure ||
		!strings.Contains(out, "create_contacts: ") || !strings.Contains(out, "contact_match: ") {
		t.Fatalf("settings put of invalid settings (%d) does not list both problems:\n%s", code, out)
	}
	if code, out := s.cli(t, base, 30*time.Second, "settings"); code != 0 || !regexp.MustCompile(`sink mode\s+bulk`).MatchString(out) {
		t.Fatalf("settings after a refused put (%d):\n%s", code, out)
	}
	if code, out := s.cli(t, base, 30*time.Second, "connection"); code != 0 || !regexp.MustCompile(`state\s+connected`).MatchString(out) {
		t.Fatalf("connection (%d):\n%s", code, out)
	}
	// The test stack stores its grant directly, so the log is empty; apiclient's tests read one.
	if code, out := s.cli(t, base, 30*time.Second, "connection", "events"); code != 0 || !strings.HasPrefix(out, "TIME  KIND  MESSAGE") {
		t.Fatalf("connection events (%d):\n%s", code, out)
	}

	// A worker whose Skilljar key Skilljar refuses fails the run.
	env := s.env("SKILLJAR_RATE_LIMIT=200/1s", "BACKFILL_SLICE_SECONDS=2")
	for i, kv := range env {
		if strings.HasPrefix(kv, "SKILLJAR_API_KEY=") {
			env[i] = "SKILLJAR_API_KEY=not-the-key"
		}
	}
	startProcess(t, env, "worker")
	code, out := s.cli(t, base, 2*time.Minute, "start", "--watch")
	if code != exitFailure || !strings.Contains(out, ": failed") {
		t.Fatalf("start --watch of a run that fails exits %d, want %d:\n%s", code, exitFailure, out)
	}
	requireLogLines(t, out)
}

// A run with records Salesforce refuses exits 3; rejected lists them and --csv exports
// every one.
func TestARunWithRejectionsExitsThreeAndItsRecordsExportAsCSV(t *testing.T) {
	t.Parallel()
	s := newStack(t, skilljarsim.Config{Users: 400, Seed: 33}, salesforcesim.Config{Profiles: []string{salesforcesim.ProfileAutomation}})
	_, base := s.startAPI(t)
	startProcess(t, s.env("SKILLJAR_RATE_LIMIT=200/1s", "BACKFILL_SLICE_SECONDS=2"), "worker")
	code, out := s.cli(t, base, 3*time.Minute, "start", "--sink-mode", "collections", "--watch")
	if code != exitRejected {
		t.Fatalf("start --watch of a run with rejections exits %d, want %d:\n%s", code, exitRejected, out)
	}
	requireLogLines(t, out)
	id := strings.Fields(strings.SplitN(out, "\n", 2)[0])[2]
	run, err := s.Store.Get(s.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rejected := run.Total().Rejected
	if rejected == 0 {
		t.Fatal("the automation profile rejected nothing: the test proves nothing")
	}

	code, out = s.cli(t, base, 30*time.Second, "rejected", id, "--csv")
	if code != 0 {
		t.Fatalf("rejected --csv (%d):\n%s", code, out)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("rejected --csv is not CSV: %v\n%s", err, out)
	}
	if int64(len(rows)-1) != rejected || rows[0][2] != "external_id" || rows[1][3] == "" {
		t.Fatalf("%d CSV rows (header %v, first %v) for %d rejected records", len(rows)-1, rows[0], rows[1], rejected)
	}
	code, out = s.cli(t, base, 30*time.Second, "rejected", id, "--limit", "1")
	if code != 0 || !strings.Contains(out, strconv.FormatInt(rejected, 10)+" rejected records, 1 to 1 shown") || !strings.Contains(out, rows[1][3]) {
		t.Fatalf("rejected --limit 1 (%d):\n%s", code, out)
	}
	// The org's automation refuses the same records again: the re-drive ends as its parent did.
	code, out = s.cli(t, base, 3*time.Minute, "redrive", id, "--watch")
	if code != exitRejected || !strings.Contains(out, "started redrive ") || !strings.Contains(out, "for the rejected records of "+id) {
		t.Fatalf("redrive --watch (%d), want %d:\n%s", code, exitRejected, out)
	}
	requireLogLines(t, out)
	code, out = s.cli(t, base, 30*time.Second, "list")
	if code != 0 || !strings.Contains(out, "VERDICT") || !strings.Contains(out, id) || !strings.Contains(out, "redrive") {
		t.Fatalf("list (%d):\n%s", code, out)
	}
	code, out = s.cli(t, base, 30*time.Second, "events", id)
	if code != 0 || !strings.Contains(out, "KIND") || strings.Count(out, "\n") < 3 {
		t.Fatalf("events (%d):\n%s", code, out)
	}
}

// requireLogLines checks output written off a terminal: no redrawn lines, and never the
// same line twice in a row.
func requireLogLines(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "\r") {
		t.Errorf("output off a terminal redraws lines:\n%q", out)
	}
	lines := strings.Split(out, "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" && lines[i] == lines[i-1] {
			t.Errorf("line %d repeats the one before: %q", i+1, lines[i])
		}
	}
	if strings.Contains(out, "0/0 learners") {
		t.Errorf("a 0/0 progress line:\n%s", out)
	}
}

func TestRunExitStatusPerOutcome(t *testing.T) {
	t.Parallel()
	sum := func(verdict string) *runstore.Summary { return &runstore.Summary{Verdict: verdict} }
	for _, tc := range []struct {
		name string
		run  runstore.Run
		want int
	}{
		{"exact", runstore.Run{State: runstore.Succeeded, Summary: sum("exact")}, exitOK},
		{"complete", runstore.Run{State: runstore.Succeeded, Summary: sum("complete")}, exitOK},
		{"dry run", runstore.Run{State: runstore.Succeeded, Summary: sum("dry_run")}, exitOK},
		{"rejections", runstore.Run{State: runstore.Succeeded, Summary: sum("mismatch"), Counters: map[string]runstore.Counters{"student": {Rejected: 2}}}, exitRejected},
		{"mismatch", runstore.Run{State: runstore.Succeeded, Summary: sum("mismatch")}, exitMismatch},
		{"failed", runstore.Run{State: runstore.Failed}, exitFailure},
		{"cancelled", runstore.Run{State: runstore.Cancelled}, exitCancelled},
	} {
		if got := runExit(&tc.run); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestVersionPrintsTheCommitTheBuildRecorded(t *testing.T) {
	t.Parallel()
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/sjbackfill/backfill", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	var b strings.Builder
	printVersion(&b, info, "ignored")
	want := "backfill v1.4.0\n  module  github.com/sjbackfill/backfill\n  commit  0123abc (modified)\n  date    2026-12-01T10:00:00Z\n  go      go1.26.8\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	// Built without VCS information (an image's context has no .git): the -X commit.
	b.Reset()
	printVersion(&b, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "fedcba9")
	if !strings.Contains(b.String(), "commit  fedcba9\n") {
		t.Fatalf("the linker's commit is not shown:\n%s", b.String())
	}
}
