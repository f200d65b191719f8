package salesforcesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/testenv"
)

// TestJSForceConformance drives the simulator with jsforce, an independent real client:
// the PKCE code exchange, a rotated refresh, a collections upsert, a mixed-type collections
// insert, an update by Id, a Bulk 2.0 load and a COUNT() query. It needs node and npm; jsforce is installed once into
// BACKFILL_TOOLS_CACHE (default ~/.cache/backfill-tools), never into the repository.
func TestJSForceConformance(t *testing.T) {
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		testenv.MissingTool(t, "SKIPPING the jsforce conformance test: node and npm are needed on PATH "+
			"(install Node.js 20+; make deps does); the simulator is NOT cross-checked against a real client in this run")
	}
	modules := installJSForce(t, npm)

	s := startSim(t, Config{RedirectURIs: []string{callback}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "jsforce", "conformance.js"))
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"SF_LOGIN_URL="+s.LoginURL(),
		"SF_CLIENT_ID="+s.ClientID(),
		"SF_CLIENT_SECRET="+s.ClientSecret(),
		"SF_REDIRECT_URI="+callback,
		"SF_VERSION="+strings.TrimPrefix(testVersion, "v"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("jsforce script failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var summary struct {
		UserID            string   `json:"userId"`
		OrgID             string   `json:"orgId"`
		Rotated           bool     `json:"rotated"`
		CollectionResults []string `json:"collectionResults"`
		CreateResults     []string `json:"createResults"`
		ContactID         string   `json:"contactId"`
		Bulk              struct{ OK, Failed int }
		Count             int  `json:"count"`
		ReuseRevoked      bool `json:"reuseRevoked"`
		APIUsage          struct {
			Used  int `json:"used"`
			Limit int `json:"limit"`
		} `json:"apiUsage"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil {
		t.Fatalf("script summary: %v\n%s", err, stdout.String())
	}
	t.Logf("jsforce summary: %s", lines[len(lines)-1])

	if summary.UserID != s.cfg.UserID || summary.OrgID != s.cfg.OrgID || !summary.Rotated || !summary.ReuseRevoked ||
		summary.Count != 24 || strings.Join(summary.CollectionResults, ",") != "ok,INVALID_EMAIL_ADDRESS,ok" ||
		strings.Join(summary.CreateResults, ",") != "ok,ok,REQUIRED_FIELD_MISSING" {
		t.Fatalf("summary = %+v", summary)
	}
	if summary.APIUsage.Limit != defaultDailyLimit || summary.APIUsage.Used == 0 {
		t.Fatalf("jsforce did not read Sforce-Limit-Info: %+v", summary.APIUsage)
	}

	// The simulator's own view must agree with what jsforce saw.
	if s.Count(objStudent) != 2 || s.Count(objProgress) != 24 || s.Count(objCourse) != 2 || s.Count("Contact") != 1 {
		t.Fatalf("counts: students %d, progress %d, courses %d, contacts %d",
			s.Count(objStudent), s.Count(objProgress), s.Count(objCourse), s.Count("Contact"))
	}
	if ada, _ := s.RecordByExternalID("Contact", "Id", summary.ContactID); ada["FirstName"] != "Ada" || ada["Email"] != "ada@example.com" {
		t.Fatalf("Contact created and updated through jsforce = %v", ada)
	}
	stu, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "js-stu-1")
	prog, _ := s.RecordByExternalID(objProgress, ObfuscatedID, "js-prog-7")
	if stu[studentEmail] != "uno@example.com" || prog["skilljar__Student__c"] != stu["Id"] ||
		prog["skilljar__Score__c"] != 7.0 || prog["skilljar__Success_Status__c"] != "PASSED" {
		t.Fatalf("stored: student %v, progress %v", stu, prog)
	}
	st := s.AuthStats()
	if st.Grants != 1 || st.Rotations < 1 || st.ReuseDetected != 1 || st.RevokedGrants != 1 {
		t.Fatalf("AuthStats = %+v", st)
	}
	var bulkCalls int
	for _, c := range s.Calls() {
		if strings.Contains(c.Endpoint, "jobs/ingest") {
			bulkCalls += c.Count
		}
	}
	if bulkCalls < 5 {
		t.Fatalf("Calls = %+v, want the bulk job's create, upload, close, poll and results calls", s.Calls())
	}
}

// installJSForce installs testdata/jsforce/package.json into the tools cache once per
// version of that file and returns the node_modules directory. It installs into a
// temporary directory and renames it, so concurrent test runs never see half an install.
func installJSForce(t *testing.T, npm string) string {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join("testdata", "jsforce", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("BACKFILL_TOOLS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("no BACKFILL_TOOLS_CACHE and no home directory: %v", err)
		}
		cache = filepath.Join(home, ".cache", "backfill-tools")
	}
	sum := sha256.Sum256(manifest)
	dir := filepath.Join(cache, "jsforce-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "jsforce", "package.json")); err == nil {
		return modules
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, "jsforce-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("installing jsforce into %s (once)", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install jsforce: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(modules); statErr != nil { // another run may have won the race
			t.Fatalf("move the jsforce install into place: %v", err)
		}
	}
	return modules
}
