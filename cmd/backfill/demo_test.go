package main

import (
	"strings"
	"testing"
	"time"
)

// The demo is a newcomer's first experience: it must keep working.
func TestDemoRunsABackfillEndToEndAndExitsZeroOnlyWhenSalesforceMatches(t *testing.T) {
	t.Parallel()
	p := startProcess(t, []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, "demo", "--users", "300")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("demo exit status %d, want 0", code)
	}
	out := p.out.String()
	for _, want := range []string{"connected to org", "started through POST /v1/backfills", "course_progress", "✓ Salesforce matches the source exactly"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
