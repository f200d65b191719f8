package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// Both verbs against the real API on the picklist org: the doctor fails naming the fix, and
// the suggested file loads with the fix in its review.
func TestDoctorAndMappingSuggestVerbsOnAPicklistOrg(t *testing.T) {
	e := apitest.Start(t, apitest.Options{Users: 5, Salesforce: salesforcesim.Config{Profiles: []string{salesforcesim.ProfilePicklist}}})
	e.ConnectSalesforce(t)
	t.Setenv("BACKFILL_URL", e.Server.URL)
	t.Setenv("BACKFILL_API_TOKEN", apitest.Token)

	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"doctor"}, &out, &errb); code != exitFailure {
		t.Fatalf("doctor on a blocking org exited %d, want %d; stderr %s", code, exitFailure, errb.String())
	}
	if !strings.Contains(out.String(), "blocking  mapping skilljar__Course_Progress__c.skilljar__Success_Status__c") ||
		!strings.Contains(out.String(), `fix: add to the course_progress field`) || !strings.Contains(out.String(), "fine      skilljar_key") {
		t.Fatalf("doctor output lacks the blocking picklist with its fix:\n%s", out.String())
	}

	out.Reset()
	errb.Reset()
	file := filepath.Join(t.TempDir(), "mapping.json")
	if code := run(t.Context(), []string{"mapping", "suggest", "--out", file}, &out, &errb); code != exitOK {
		t.Fatalf("mapping suggest exited %d: %s", code, errb.String())
	}
	if _, err := mapping.Load(file); err != nil {
		t.Fatalf("the suggested file does not load: %v", err)
	}
	if !strings.Contains(errb.String(), "review course_progress.skilljar__Success_Status__c: preflight still blocks") || !strings.Contains(errb.String(), `"value_map"`) {
		t.Fatalf("the review on stderr lacks the picklist's value_map:\n%s", errb.String())
	}
	if b, _ := os.ReadFile(file); out.Len() != 0 || !strings.Contains(string(b), `"note": "REVIEW: preflight still blocks: skilljar__Course_Progress__c.skilljar__Success_Status__c`) {
		t.Fatalf("with --out the file gets the mapping, its fields noted for review, and stdout nothing; stdout %q, file:\n%s", out.String(), b)
	}
}
