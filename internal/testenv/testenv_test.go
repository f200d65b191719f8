package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/testenv"
)

// TestMissingToolSkipsOrFails runs a test that lacks a tool in a child process, once with
// and once without BACKFILL_REQUIRE_ALL, and reads the verdict go test prints.
func TestMissingToolSkipsOrFails(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		return
	}
	for _, tc := range []struct {
		requireAll, want string
	}{{"", "--- SKIP: TestChildLacksATool"}, {"1", "--- FAIL: TestChildLacksATool"}} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestChildLacksATool$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", testenv.RequireAllVar+"="+tc.requireAll)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "frobnicator is missing") {
			t.Errorf("with %s=%q the child printed:\n%s\nwant %q", testenv.RequireAllVar, tc.requireAll, out, tc.want)
		}
	}
}

func TestChildLacksATool(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "1" {
		t.Skip("runs only as the child of TestMissingToolSkipsOrFails")
	}
	testenv.MissingTool(t, "frobnicator is missing")
}
