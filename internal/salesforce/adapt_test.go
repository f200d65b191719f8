package salesforce_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// adaptations records what the client reports through Config.OnAdapt.
type adaptations struct {
	mu   sync.Mutex
	seen []salesforce.Adaptation
}

func (a *adaptations) record(_ context.Context, ad salesforce.Adaptation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, ad)
}

func (a *adaptations) of(kind salesforce.AdaptationKind) []salesforce.Adaptation {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []salesforce.Adaptation
	for _, ad := range a.seen {
		if ad.Kind == kind {
			out = append(out, ad)
		}
	}
	return out
}

// faultySetup runs a simulated org behind an orgFaults configured by faults, and a client
// on it whose test config tweak may adjust.
func faultySetup(t testing.TB, faults func(*orgFaults), tweak func(*salesforce.Config)) (*salesforcesim.Sim, *salesforce.Client, *orgFaults, *calls, *adaptations) {
	t.Helper()
	sim := startSim(t, salesforcesim.Config{DailyLimit: 1 << 30})
	f := newOrgFaults(t, sim)
	if faults != nil {
		faults(f)
	}
	obs, ads := newCalls(), &adaptations{}
	cfg := fastConfig(newSimTokens(sim).through(f.url), obs)
	cfg.OnAdapt = ads.record
	if tweak != nil {
		tweak(&cfg)
	}
	return sim, newClient(t, cfg), f, obs, ads
}

func mustAllSucceed(t testing.TB, res []salesforce.Result, err error, n int) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != n {
		t.Fatalf("%d results for %d records", len(res), n)
	}
	for i, r := range res {
		if !r.Success {
			t.Fatalf("result %d (%s) failed: %+v", i, r.ExternalID, r.Errors)
		}
	}
}

func TestUpsertSplitsACallThatFailsWholeAndKeepsTheSizeThatWentThrough(t *testing.T) {
	t.Parallel()
	sim, c, f, calls, ads := faultySetup(t, func(f *orgFaults) { f.cpuLimit = 60 }, nil)
	ctx := context.Background()

	var mu sync.Mutex
	var callHook []string
	hooked := salesforce.WithAdaptationHook(ctx, func(a salesforce.Adaptation) {
		mu.Lock()
		defer mu.Unlock()
		callHook = append(callHook, a.String())
	})
	recs := courses("c", 200)
	res, err := c.Upsert(hooked, course, extID, recs)
	mustAllSucceed(t, res, err, 200)
	for i, r := range res {
		if r.ExternalID != recs[i][extID] {
			t.Fatalf("result %d is for %s; want input order", i, r.ExternalID)
		}
	}
	// 200 fails, both 100s fail, all four 50s go through: 7 calls.
	if got := calls.count("collections_upsert"); got != 7 {
		t.Errorf("%d collections calls; want 7 (200, 2×100, 4×50)", got)
	}
	learned := ads.of(salesforce.AdaptBatchSize)
	if len(learned) != 1 || learned[0].SObject != course || learned[0].From != 200 || learned[0].To != 50 ||
		!strings.Contains(learned[0].Reason, "Apex CPU time limit exceeded") {
		t.Errorf("batch-size adaptations = %+v; want one, 200 → 50 on %s, citing the CPU limit", learned, course)
	}
	if got := strings.Join(callHook, "; "); got != learned[0].String() {
		t.Errorf("the call's own hook heard %q; want %q", got, learned[0].String())
	}

	// The next write uses the learned size from the start: no call fails.
	before, _, _, _, _ := f.stats()
	res, err = c.Upsert(ctx, course, extID, courses("d", 200))
	mustAllSucceed(t, res, err, 200)
	if after, _, _, _, _ := f.stats(); after != before {
		t.Errorf("%d whole failures after learning; want none", after-before)
	}
	if got := calls.count("collections_upsert"); got != 7+4 {
		t.Errorf("second write took %d calls; want 4 of 50", got-7)
	}
	if sim.Count(course) != 400 {
		t.Errorf("org has %d courses; want 400", sim.Count(course))
	}
}

func TestUpsertIsolatesTheRecordWhoseTriggerThrowsAndLearnsNothing(t *testing.T) {
	t.Parallel()
	sim, c, _, calls, ads := faultySetup(t, func(f *orgFaults) { f.poison = map[string]bool{"c-13": true} }, nil)
	res, err := c.Upsert(context.Background(), course, extID, courses("c", 20))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if i == 13 {
			if r.Success || errorCode(r) != "APEX_ERROR" || !strings.Contains(r.Errors[0].Message, "NullPointerException") {
				t.Errorf("c-13 = %+v; want failed with the trigger's APEX_ERROR", r)
			}
			continue
		}
		if !r.Success {
			t.Errorf("%s = %+v; want written", r.ExternalID, r)
		}
	}
	// 20 → 10 (poisoned) + 10; 10 → 5 + 5; 5 → 3 + 2; 3 → 2 + 1; 2 → 1 + 1: bounded by the halving depth.
	if got := calls.count("collections_upsert"); got > 2*5+1 {
		t.Errorf("%d calls to isolate one record among 20; want at most 11", got)
	}
	if got := ads.of(salesforce.AdaptBatchSize); len(got) != 0 {
		t.Errorf("one bad record lowered the batch size: %+v", got)
	}
	if sim.Count(course) != 19 {
		t.Errorf("org has %d courses; want 19", sim.Count(course))
	}
}

func TestUpsertWithoutAdaptationFailsEveryRecordOfAWholeFailure(t *testing.T) {
	t.Parallel()
	sim, c, _, calls, _ := faultySetup(t, func(f *orgFaults) { f.cpuLimit = 60 },
		func(cfg *salesforce.Config) { cfg.DisableAdaptation = true })
	res, err := c.Upsert(context.Background(), course, extID, courses("c", 200))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Success || errorCode(r) != "APEX_ERROR" {
			t.Fatalf("%s = %+v; want failed with APEX_ERROR", r.ExternalID, r)
		}
	}
	if calls.count("collections_upsert") != 1 || sim.Count(course) != 0 {
		t.Errorf("%d calls, %d courses; want 1 call that wrote nothing", calls.count("collections_upsert"), sim.Count(course))
	}
}

func TestBulkUpsertSplitsAJobThatFailsWholeAndUsesSmallerJobsAfter(t *testing.T) {
	t.Parallel()
	sim, c, _, calls, ads := faultySetup(t, func(f *orgFaults) { f.bulkCPULimit = 300 }, nil)
	ctx := context.Background()

	res, err := c.BulkUpsert(ctx, course, extID, courses("c", 1000))
	mustAllSucceed(t, res, err, 1000)
	// 1000 fails, both 500s fail, the four 250s go through.
	if got := calls.count("bulk_create"); got != 7 {
		t.Errorf("%d jobs; want 7 (1000, 2×500, 4×250)", got)
	}
	learned := ads.of(salesforce.AdaptBulkJobSize)
	if len(learned) != 1 || learned[0].To != 250 {
		t.Errorf("bulk adaptations = %+v; want one to 250", learned)
	}
	res, err = c.BulkUpsert(ctx, course, extID, courses("d", 1000))
	mustAllSucceed(t, res, err, 1000)
	if got := calls.count("bulk_create"); got != 7+4 {
		t.Errorf("second write took %d jobs; want 4 of 250", got-7)
	}
	if sim.Count(course) != 2000 {
		t.Errorf("org has %d courses; want 2000", sim.Count(course))
	}
}

func TestBulkUpsertSendsRowsFailedByTheCPULimitAgainInSmallerCalls(t *testing.T) {
	t.Parallel()
	sim, c, _, calls, _ := faultySetup(t, func(f *orgFaults) {
		f.bulkCPULimit, f.bulkRowErrors, f.cpuLimit = 300, true, 120
	}, nil)
	res, err := c.BulkUpsert(context.Background(), course, extID, courses("c", 400))
	mustAllSucceed(t, res, err, 400)
	if calls.count("bulk_create") != 1 || calls.count("collections_upsert") == 0 {
		t.Errorf("%d jobs and %d collections calls; want one job, then its failed rows through collections",
			calls.count("bulk_create"), calls.count("collections_upsert"))
	}
	if sim.Count(course) != 400 {
		t.Errorf("org has %d courses; want 400", sim.Count(course))
	}
}

// progressRows builds n progress rows of the given students and courses, which must exist.
func progressRows(prefix string, n int, student, course func(i int) string) []salesforce.Record {
	recs := make([]salesforce.Record, n)
	for i := range recs {
		recs[i] = salesforce.Record{
			extID:                  fmt.Sprintf("%s-%d", prefix, i),
			"skilljar__Student__r": map[string]any{extID: student(i)},
			"skilljar__Course__r":  map[string]any{extID: course(i)},
		}
	}
	return recs
}

// parents writes the students s-0 … s-(students-1) and courses k-0 … k-(courses-1).
func parents(t *testing.T, c *salesforce.Client, students, courseCount int) {
	t.Helper()
	recs := make([]salesforce.Record, students)
	for i := range recs {
		recs[i] = salesforce.Record{extID: fmt.Sprintf("s-%d", i), "skilljar__Email__c": fmt.Sprintf("s%d@example.com", i)}
	}
	res, err := c.Upsert(context.Background(), student, extID, recs)
	mustAllSucceed(t, res, err, students)
	res, err = c.Upsert(context.Background(), course, extID, courses("k", courseCount))
	mustAllSucceed(t, res, err, courseCount)
}

func TestUpsertGroupsChildrenByParentSoParallelCallsDoNotCollide(t *testing.T) {
	t.Parallel()
	sim, c, f, _, _ := faultySetup(t, func(f *orgFaults) {
		f.lockHold, f.lockWait = 100*time.Millisecond, time.Millisecond
		f.concurrent = 100
	}, func(cfg *salesforce.Config) { cfg.LockRetries = -1 })
	parents(t, c, 600, 3)
	// Rows of three courses, interleaved; each learner is in one course.
	recs := progressRows("p", 600, func(i int) string { return fmt.Sprintf("s-%d", i) }, func(i int) string { return fmt.Sprintf("k-%d", i%3) })
	res, err := c.Upsert(context.Background(), progress, extID, recs)
	mustAllSucceed(t, res, err, 600)
	for i, r := range res {
		if r.ExternalID != recs[i][extID] {
			t.Fatalf("result %d is for %s; want input order", i, r.ExternalID)
		}
	}
	_, locks, _, inflight, _ := f.stats()
	if locks != 0 || inflight < 2 {
		t.Errorf("%d lock errors with %d calls in flight at most; want none, with the three courses' calls in parallel", locks, inflight)
	}
	if sim.Count(progress) != 600 {
		t.Errorf("org has %d progress rows; want 600", sim.Count(progress))
	}
}

func TestParallelWritesUnderOneParentRetryTheirLocksAndSwitchToSerial(t *testing.T) {
	t.Parallel()
	sim, c, f, _, ads := faultySetup(t, func(f *orgFaults) {
		f.lockHold, f.lockWait = 40*time.Millisecond, 5*time.Millisecond
	}, func(cfg *salesforce.Config) {
		cfg.LockBackoff, cfg.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	})
	parents(t, c, 400, 1)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	results := make([][]salesforce.Result, 2)
	for g := range 2 {
		wg.Go(func() {
			recs := progressRows(fmt.Sprintf("p%d", g), 200, func(i int) string { return fmt.Sprintf("s-%d", g*200+i) }, func(int) string { return "k-0" })
			results[g], errs[g] = c.Upsert(context.Background(), progress, extID, recs)
		})
	}
	wg.Wait()
	for g := range 2 {
		mustAllSucceed(t, results[g], errs[g], 200)
	}
	if _, locks, _, _, _ := f.stats(); locks == 0 {
		t.Fatal("no lock errors: the test did not exercise lock contention")
	}
	serial := ads.of(salesforce.AdaptSerial)
	if len(serial) != 1 || serial[0].SObject != progress || !strings.Contains(serial[0].Reason, salesforce.CodeUnableToLockRow) {
		t.Errorf("serial adaptations = %+v; want one for %s naming the lock error", serial, progress)
	}
	if sim.Count(progress) != 400 {
		t.Errorf("org has %d progress rows; want 400", sim.Count(progress))
	}
}

func TestBulkJobsOfALockHeavyObjectRunOneAtATimeOnceSerial(t *testing.T) {
	t.Parallel()
	sim, c, f, calls, ads := faultySetup(t, nil, func(cfg *salesforce.Config) { cfg.SerialJobRows = 50 })
	ctx := context.Background()
	recs := courses("c", 100)
	for i := range 20 {
		sim.InjectRecordError(course, fmt.Sprintf("c-%d", i), salesforce.CodeUnableToLockRow, 1)
	}
	res, err := c.BulkUpsert(ctx, course, extID, recs)
	mustAllSucceed(t, res, err, 100)
	if len(ads.of(salesforce.AdaptSerial)) != 1 {
		t.Fatalf("adaptations = %+v; want the object switched to serial after 20 of 100 rows locked", ads.of(salesforce.AdaptSerial))
	}
	if got := calls.count("collections_upsert"); got != 1 {
		t.Errorf("locked rows took %d collections calls; want them in one", got)
	}

	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			res, err := c.BulkUpsert(ctx, course, extID, courses(fmt.Sprintf("d%d", g), 120))
			mustAllSucceed(t, res, err, 120)
		})
	}
	wg.Wait()
	if _, _, _, _, open := f.stats(); open != 1 {
		t.Errorf("%d jobs of %s open at once; want 1 once serial", open, course)
	}
	if got := calls.count("bulk_create"); got != 1+3*3 {
		t.Errorf("%d jobs; want 1, then 3 of at most 50 rows per 120-row write", got)
	}
	if sim.Count(course) != 460 {
		t.Errorf("org has %d courses; want 460", sim.Count(course))
	}
}

func TestTheConcurrentRequestLimitLowersTheClientsConcurrencyInsteadOfFailing(t *testing.T) {
	t.Parallel()
	sim, c, f, _, ads := faultySetup(t, func(f *orgFaults) { f.concurrent, f.hold = 2, 50*time.Millisecond },
		func(cfg *salesforce.Config) { cfg.MaxConcurrency = 8 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			res, err := c.Upsert(context.Background(), course, extID, courses(fmt.Sprintf("c%d", g), 10))
			mustAllSucceed(t, res, err, 10)
		})
	}
	wg.Wait()
	_, _, refused, _, _ := f.stats()
	if refused == 0 {
		t.Fatal("the org never refused a request: the test did not exercise the limit")
	}
	if got := c.Concurrency(); got > 2 || got < 1 {
		t.Errorf("client concurrency = %d; want lowered to the org's 2 or below", got)
	}
	lowered := ads.of(salesforce.AdaptConcurrency)
	if len(lowered) == 0 || lowered[0].From != 8 || !strings.Contains(lowered[0].Reason, "REQUEST_LIMIT_EXCEEDED") {
		t.Errorf("concurrency adaptations = %+v; want the first from 8, citing REQUEST_LIMIT_EXCEEDED", lowered)
	}
	if len(lowered) > 3 {
		t.Errorf("%d concurrency changes for one burst; a burst of refusals must lower the limit once per level", len(lowered))
	}
	if sim.Count(course) != 80 {
		t.Errorf("org has %d courses; want 80", sim.Count(course))
	}
}

func TestTheClientWinsConcurrencyBackAfterALongRunOfAnsweredRequests(t *testing.T) {
	t.Parallel()
	_, c, f, _, ads := faultySetup(t, func(f *orgFaults) { f.concurrent, f.hold = 1, 50*time.Millisecond },
		func(cfg *salesforce.Config) { cfg.MaxConcurrency = 2 })
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := c.Count(ctx, "SELECT COUNT() FROM "+course); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if c.Concurrency() != 1 {
		t.Fatalf("concurrency = %d after a refusal; want 1", c.Concurrency())
	}
	f.setHold(0)
	for range 200 {
		if _, err := c.Count(ctx, "SELECT COUNT() FROM "+course); err != nil {
			t.Fatal(err)
		}
	}
	changes := ads.of(salesforce.AdaptConcurrency)
	if c.Concurrency() != 2 || len(changes) != 2 || changes[1].From != 1 || changes[1].To != 2 {
		t.Errorf("concurrency = %d with changes %+v; want lowered to 1, then raised back to 2", c.Concurrency(), changes)
	}
}

func TestBulkUpsertGoesThroughCollectionsOnceTheObjectTakesNoBiggerJob(t *testing.T) {
	t.Parallel()
	sim, c, _, calls, ads := faultySetup(t, func(f *orgFaults) { f.bulkCPULimit = 150 }, nil)
	ctx := context.Background()
	res, err := c.BulkUpsert(ctx, course, extID, courses("c", 1000))
	mustAllSucceed(t, res, err, 1000)
	// 1000 fails, both 500s fail, the four 250s fail; their 125-row halves go through collections.
	if jobs, coll := calls.count("bulk_create"), calls.count("collections_upsert"); jobs != 7 || coll != 8 {
		t.Errorf("%d jobs and %d collections calls; want 7 and 8", jobs, coll)
	}
	if learned := ads.of(salesforce.AdaptBulkJobSize); len(learned) != 1 || learned[0].To != 125 {
		t.Errorf("bulk adaptations = %+v; want one to 125", learned)
	}
	res, err = c.BulkUpsert(ctx, course, extID, courses("d", 1000))
	mustAllSucceed(t, res, err, 1000)
	if jobs, coll := calls.count("bulk_create"), calls.count("collections_upsert"); jobs != 7 || coll != 8+5 {
		t.Errorf("the second write took %d jobs and %d collections calls; want none and 5", jobs-7, coll-8)
	}
	if sim.Count(course) != 2000 {
		t.Errorf("org has %d courses; want 2000", sim.Count(course))
	}
}

func TestAMultiMatchExternalIDNamesTheRecordsAndTheFix(t *testing.T) {
	t.Parallel()
	ids := []string{"a02xx000003DGbYAAW", "a02xx000003DGbZAAW"}
	for _, quiet := range []bool{false, true} {
		t.Run(fmt.Sprintf("ids in the message=%v", !quiet), func(t *testing.T) {
			t.Parallel()
			sim, c, _, calls, _ := faultySetup(t, func(f *orgFaults) {
				f.dupes, f.dupesQuiet = map[string][]string{"c-1": ids}, quiet
			}, nil)
			res, err := c.Upsert(context.Background(), course, extID, courses("c", 3))
			if err != nil {
				t.Fatal(err)
			}
			r := res[1]
			if r.Success || errorCode(r) != salesforce.CodeDuplicateExternalID || !slices.Equal(r.Errors[0].MatchingIDs, ids) {
				t.Fatalf("c-1 = %+v; want DUPLICATE_EXTERNAL_ID with the matching ids %v", r, ids)
			}
			for _, want := range append(slices.Clone(ids), "remove the duplicate records", "make "+extID+" unique") {
				if !strings.Contains(r.Errors[0].Message, want) {
					t.Errorf("message %q does not say %q", r.Errors[0].Message, want)
				}
			}
			if wantQueries := map[bool]int{false: 0, true: 1}[quiet]; calls.count("query") != wantQueries {
				t.Errorf("%d queries; want %d (the ids are looked up only when the message lacks them)", calls.count("query"), wantQueries)
			}
			if !res[0].Success || !res[2].Success || sim.Count(course) != 2 {
				t.Errorf("the other records = %+v, %+v with %d courses; want both written", res[0], res[2], sim.Count(course))
			}
		})
	}
}

func TestCreateOnlyFieldsAreWrittenOnCreateAndLeftOutOnUpdate(t *testing.T) {
	t.Parallel()
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			t.Parallel()
			sim, c, _, _, _ := faultySetup(t, nil, nil)
			ctx := context.Background()
			parents(t, c, 6, 1)
			// A master-detail relationship without "Allow reparenting" (reference §8.1).
			sim.SetFieldAccess(progress, "skilljar__Student__c", true, false)
			write := c.Upsert
			if bulk {
				write = c.BulkUpsert
			}
			first := progressRows("p", 3, func(i int) string { return fmt.Sprintf("s-%d", i) }, func(int) string { return "k-0" })
			res, err := write(ctx, progress, extID, first)
			mustAllSucceed(t, res, err, 3)

			// Without the policy, Salesforce refuses the existing records.
			again := progressRows("p", 5, func(i int) string { return fmt.Sprintf("s-%d", i+1) }, func(int) string { return "k-0" })
			res, err = write(ctx, progress, extID, again)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Success || errorCode(res[0]) != "INVALID_FIELD_FOR_INSERT_UPDATE" {
				t.Fatalf("without the policy, p-0 = %+v; want refused with INVALID_FIELD_FOR_INSERT_UPDATE", res[0])
			}

			c.SetCreateOnly(progress, "skilljar__Student__c")
			again = progressRows("p", 6, func(i int) string { return fmt.Sprintf("s-%d", i) }, func(int) string { return "k-0" })
			again[0]["skilljar__Student__r"] = map[string]any{extID: "s-5"} // a reparenting attempt
			res, err = write(ctx, progress, extID, again)
			mustAllSucceed(t, res, err, 6)
			for i, r := range res {
				if r.Created != (i >= 5) {
					t.Errorf("%s created=%v; want p-0…p-4 updated (p-3, p-4 were created by the refused write's new records) and p-5 created", r.ExternalID, r.Created)
				}
			}
			students := map[string]string{}
			for _, s := range sim.Records(student) {
				students[s["Id"].(string)] = s[extID].(string)
			}
			for i, want := range []string{"s-0", "s-1", "s-2", "s-4", "s-5", "s-5"} {
				row, _ := sim.RecordByExternalID(progress, extID, fmt.Sprintf("p-%d", i))
				if got := students[fmt.Sprint(row["skilljar__Student__c"])]; got != want {
					t.Errorf("p-%d belongs to %s; want %s", i, got, want)
				}
			}
		})
	}
}
