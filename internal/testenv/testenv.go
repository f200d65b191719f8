// Package testenv decides what a test does when the machine lacks a tool it needs: skip
// loudly on a developer's machine, fail where every test must run.
package testenv

import (
	"os"
	"testing"
)

// RequireAllVar names the variable that turns a missing tool into a failure; CI sets it so
// that no test can pass by not running.
const RequireAllVar = "BACKFILL_REQUIRE_ALL"

// MissingTool ends the test because a tool it needs is missing: with BACKFILL_REQUIRE_ALL=1
// as a failure, otherwise as a skip. why names the tool and how to install it.
func MissingTool(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireAllVar) == "1" {
		t.Fatalf("%s\nFAILING rather than skipping: %s=1 says every test must run here", why, RequireAllVar)
	}
	t.Log(why)
	t.Skip(why)
}
