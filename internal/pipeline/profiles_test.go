package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/stacktest"
)

// profileCase is one org profile (or a combination) a full backfill must get through.
type profileCase struct {
	name     string
	profiles []string
	// unstable serves learner lists in a new order on every request, with membership churn
	// while the learner streams run.
	unstable bool
	// before shapes the org before the run.
	before func(t *testing.T, e *env)
	// fix removes the fault after a run that did not end exact, and starts the run that must
	// then end exact (a re-drive of the rejected records, or a new run once a block is fixed);
	// nil: the run itself must end exact.
	fix func(t *testing.T, e *env, run *runstore.Run) *runstore.Run
	// fixed, when set, accepts a difference from the source the fix itself makes, which
	// simcheck (comparing with the default mapping's values) cannot know of.
	fixed func(diff string) bool
}

// TestEveryOrgProfileEndsExactOrExplainedAndExactAfterTheFix runs a full backfill over real
// HTTP on every org profile, and on a combination with unstable list order and churn. Each
// ends exact, or ends with every rejection in the ledger carrying Salesforce's code and a fix
// (a blocked run with a message naming the fix); then, the fault removed, a re-drive ends
// exact.
func TestEveryOrgProfileEndsExactOrExplainedAndExactAfterTheFix(t *testing.T) {
	t.Parallel()
	cases := []profileCase{
		{name: salesforcesim.ProfileMasterDetail, profiles: []string{salesforcesim.ProfileMasterDetail}},
		{name: salesforcesim.ProfileAutoNumber, profiles: []string{salesforcesim.ProfileAutoNumber}},
		{name: salesforcesim.ProfileSparse, profiles: []string{salesforcesim.ProfileSparse}},
		{name: salesforcesim.ProfilePicklist, profiles: []string{salesforcesim.ProfilePicklist}, fix: addValueMap, fixed: valueMapped},
		{name: salesforcesim.ProfileAutomation, profiles: []string{salesforcesim.ProfileAutomation}, fix: turnOff(salesforcesim.ProfileAutomation)},
		{name: salesforcesim.ProfileLocks, profiles: []string{salesforcesim.ProfileLocks}},
		{name: salesforcesim.ProfileDeveloperEdition, profiles: []string{salesforcesim.ProfileDeveloperEdition}},
		{name: salesforcesim.ProfileDirty, profiles: []string{salesforcesim.ProfileDirty}, before: seedDuplicateStudent, fix: removeDuplicates, fixed: clearedDuplicate},
		{name: "combination", profiles: []string{salesforcesim.ProfileMasterDetail, salesforcesim.ProfileAutoNumber,
			salesforcesim.ProfileLocks, salesforcesim.ProfileSparse, salesforcesim.ProfileDeveloperEdition}, unstable: true},
	}
	for _, c := range cases {
		for _, mode := range []string{runstore.SinkCollections, runstore.SinkBulk} {
			t.Run(c.name+"/"+mode, func(t *testing.T) { runProfileCase(t, c, mode) })
		}
	}
}

// profileUsers is the learners of each profile's org: a few pages of each domain.
const profileUsers = 200

func runProfileCase(t *testing.T, c profileCase, mode string) {
	t.Parallel()
	sj := skilljarsim.Config{Users: profileUsers, Seed: 3}
	if c.unstable {
		sj.UserOrder, sj.TieSpan = skilljarsim.OrderUnstable, tieSpan
	}
	e := setup(t, options{skilljar: sj, salesforce: salesforcesim.Config{Profiles: c.profiles}, pageSize: 25})
	if c.before != nil {
		c.before(t, e)
	}
	stop := e.startWorker(t)
	run := e.start(t, runstore.Scope{SinkMode: mode})
	if c.unstable {
		churnWhileCrawling(t, e, run.ID, 40)
	}
	run = e.wait(t, run.ID, 60*time.Second)
	if c.unstable && len(e.sj.Org().Learners) == profileUsers {
		t.Fatal("no learner joined during the crawl: the churn proves nothing")
	}
	if c.fix == nil {
		e.requireExact(t, run)
		return
	}
	requireExplained(t, e, run)
	if run.State == runstore.Succeeded && run.Summary != nil && run.Summary.Verdict == "exact" {
		t.Fatal("the run ended exact: the fault did not show and the fix proves nothing")
	}
	stop()
	redrive := c.fix(t, e, run)
	if redrive.State != runstore.Succeeded {
		t.Fatalf("after the fix, run %s ended %s (%s)", redrive.ID, redrive.State, redrive.Error)
	}
	if got := redrive.Total(); got.Rejected != 0 {
		t.Fatalf("after the fix %d rows were still rejected: %+v", got.Rejected, redrive.Counters)
	}
	rep := simcheck.Compare(e.sj.Org(), e.sf)
	accepted := 0
	for _, d := range rep.Diffs {
		if c.fixed == nil || !c.fixed(d) {
			t.Fatalf("after the fix Salesforce still differs from the source:\n%s", rep)
		}
		accepted++
	}
	if c.fixed != nil && accepted == 0 {
		t.Fatal("no difference the fix makes: the comparison's allowance is never used")
	}
}

// churnWhileCrawling changes domain memberships at perSecond until the run reaches its
// verification walks, so learners join, leave and rejoin under the crawl; stop brings every
// member who left back before the walks count them.
func churnWhileCrawling(t *testing.T, e *env, id string, perSecond float64) {
	t.Helper()
	stop := e.sj.StartChurn(perSecond)
	t.Cleanup(stop)
	go func() {
		defer stop()
		for {
			run, err := e.store.Get(e.ctx, id)
			if err != nil || run.State.Terminal() || run.Plan != nil && run.Current >= lastLearnersStream(run) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// fixText is how the engine gives an operator the fix: "Fix: …" after Salesforce's own
// words, the re-drive that writes a held-back row, or the lines a blocked run asks for.
var fixText = regexp.MustCompile(`(?i)\bfix\b|re-drive|retrying the rejected records|add to .* the line`)

// requireExplained fails the test unless a run that did not end exact says why: a failed
// run names the fix in its error, and every ledger entry carries Salesforce's error code and
// a fix.
func requireExplained(t *testing.T, e *env, run *runstore.Run) {
	t.Helper()
	if run.State == runstore.Failed && !fixText.MatchString(run.Error) {
		t.Errorf("run failed without naming the fix: %s", run.Error)
	}
	ledger, total, err := e.store.RejectedPage(e.ctx, run.ID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != runstore.Failed && total == 0 {
		t.Fatalf("run ended %s with verdict %+v and an empty ledger: nothing explains it", run.State, run.Summary)
	}
	for _, r := range ledger {
		if r.Code == "" || !fixText.MatchString(r.Message) {
			t.Errorf("ledger entry without Salesforce's code or a fix: %s %s: %s %q", r.Object, r.ExternalID, r.Code, r.Message)
		}
	}
}

// valueMapLine is the value_map a blocked picklist's message gives.
var valueMapLine = regexp.MustCompile(`"value_map": (\{[^}]*\})`)

// addValueMap takes the value_map lines the blocked run's message gives into the mapping, and
// starts a new run with it.
func addValueMap(t *testing.T, e *env, run *runstore.Run) *runstore.Run {
	t.Helper()
	m := valueMapLine.FindStringSubmatch(run.Error)
	if run.State != runstore.Failed || m == nil {
		t.Fatalf("run ended %s (%s); want it blocked with the value_map lines", run.State, run.Error)
	}
	var values map[string]string
	if err := json.Unmarshal([]byte(m[1]), &values); err != nil {
		t.Fatalf("the message's value_map %s: %v", m[1], err)
	}
	fixed := mapping.Default()
	o, _ := fixed.Object(mapping.CourseProgress)
	for i := range o.Fields {
		if o.Fields[i].Field == "skilljar__Success_Status__c" {
			o.Fields[i].ValueMap = values
		}
	}
	e.engine.Mapping = fixed // the worker is stopped: no slice reads it meanwhile
	e.startWorker(t)
	return e.wait(t, e.start(t, runstore.Scope{}).ID, 60*time.Second)
}

// valueMapped accepts a Success Status the value_map translated, as the org's value for
// Skilljar's.
func valueMapped(diff string) bool {
	m := regexp.MustCompile(`^skilljar__Course_Progress__c \S+: skilljar__Success_Status__c is "(\w+)", want "(\w+)"$`).FindStringSubmatch(diff)
	return m != nil && m[1] == map[string]string{"PASSED": "Passed", "FAILED": "Failed"}[m[2]]
}

// clearedDuplicate accepts the one Student more than the source has: the duplicate whose
// external id the fix cleared, a record of the org's own that the simulator cannot delete.
func clearedDuplicate(diff string) bool {
	return diff == fmt.Sprintf("skilljar__Student__c: Salesforce holds %d records, the source has %d", profileUsers+1, profileUsers)
}

// turnOff ends the profile's behaviour on the running org, as its admin fixes the automation,
// and re-drives the run's rejected records.
func turnOff(profile string) func(t *testing.T, e *env, run *runstore.Run) *runstore.Run {
	return func(t *testing.T, e *env, run *runstore.Run) *runstore.Run {
		t.Helper()
		if err := e.sf.TurnOff(profile); err != nil {
			t.Fatal(err)
		}
		return redrive(t, e, run)
	}
}

func redrive(t *testing.T, e *env, run *runstore.Run) *runstore.Run {
	t.Helper()
	e.startWorker(t)
	retry, err := e.engine.RetryRejected(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return e.wait(t, retry.ID, 60*time.Second)
}

// seedDuplicateStudent leaves two records under the first learner's external id, as a dirty
// org holds them.
func seedDuplicateStudent(t *testing.T, e *env) {
	t.Helper()
	e.sf.SeedDuplicates("skilljar__Student__c", e.sj.Org().Learners[0].ID, 2)
}

// removeDuplicates does what the ledger's fix says for each DUPLICATE_EXTERNAL_ID entry:
// clears the external id of every matching record but the first, over the REST API as an
// admin would, stops the other writer and re-drives the run.
func removeDuplicates(t *testing.T, e *env, run *runstore.Run) *runstore.Run {
	t.Helper()
	ledger, _, err := e.store.RejectedPage(e.ctx, run.ID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	ids := regexp.MustCompile(`\(Ids ([^)]*)\)`)
	fixed := 0
	for _, r := range ledger {
		m := ids.FindStringSubmatch(r.Message)
		if r.Code != "DUPLICATE_EXTERNAL_ID" || m == nil {
			continue
		}
		for _, id := range strings.Split(m[1], ", ")[1:] {
			clearExternalID(t, e, r.SObject, id)
		}
		fixed++
	}
	if fixed == 0 {
		t.Fatalf("no ledger entry names the duplicate records' ids: %+v", ledger)
	}
	if err := e.sf.TurnOff(salesforcesim.ProfileDirty); err != nil {
		t.Fatal(err)
	}
	return redrive(t, e, run)
}

func clearExternalID(t *testing.T, e *env, sobject, id string) {
	t.Helper()
	tok := e.sf.MintTokens("api")
	body, _ := json.Marshal(map[string]any{salesforcesim.ObfuscatedID: nil})
	req, err := http.NewRequest(http.MethodPatch, tok.InstanceURL+"/services/data/v62.0/sobjects/"+sobject+"/"+id, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("clearing the external id of %s %s: %s", sobject, id, resp.Status)
	}
}

// BenchmarkOrgProfiles backfills an org of 3,000 learners on the locks and the automation
// profile, in the auto and the bulk sink mode, with the sink's handling (splitting, lock
// retries, grouping by parent, the serial switch, the concurrency gate) and with it switched
// off, and reports the rows left rejected, the wall time, the Salesforce calls spent and the
// sink's adaptations. Bulk jobs take up to 25,000
// rows, so a job has several 10,000-record batches, which the locks profile runs in parallel
// as the platform does; auto sends smaller batches as collections calls of several chunks.
func BenchmarkOrgProfiles(b *testing.B) {
	for _, profile := range []string{salesforcesim.ProfileLocks, salesforcesim.ProfileAutomation} {
		for _, mode := range []string{runstore.SinkAuto, runstore.SinkBulk} {
			for _, handling := range []string{"handled", "off"} {
				b.Run(profile+"/"+mode+"/"+handling, func(b *testing.B) {
					for range b.N {
						rejected, wall, calls, adapted := profileRun(b, profile, mode, handling == "off")
						b.ReportMetric(float64(rejected), "rejected")
						b.ReportMetric(float64(adapted), "adaptations")
						b.ReportMetric(wall.Seconds(), "wall_s")
						b.ReportMetric(float64(calls), "sf_calls")
					}
				})
			}
		}
	}
}

// profileRun backfills the org once and returns the rows left rejected, the wall time, the
// Salesforce API calls the run spent and how many times the sink adapted to the org.
func profileRun(b *testing.B, profile, mode string, off bool) (rejected int64, wall time.Duration, calls int, adapted int64) {
	b.Helper()
	var adaptations atomic.Int64
	s := stacktest.Start(b, stacktest.Options{
		Skilljar:   skilljarsim.Config{Users: 3000, Seed: 5},
		Salesforce: salesforcesim.Config{Profiles: []string{profile}},
		Pipeline:   pipeline.Config{BulkBatchRows: 25000},
		SinkConfig: func(c *salesforce.Config) {
			c.DisableAdaptation = off
			c.OnAdapt = func(context.Context, salesforce.Adaptation) { adaptations.Add(1) }
		},
	})
	s.StartWorker(b)
	start := time.Now()
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{SinkMode: mode}, Trigger: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	run = s.WaitFor(b, run.ID, 20*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	wall = time.Since(start)
	if run.State != runstore.Succeeded {
		b.Fatalf("run ended %s (%s)", run.State, run.Error)
	}
	calls, _ = s.Salesforce.APIUsage()
	return run.Total().Rejected, wall, calls, adaptations.Load()
}
