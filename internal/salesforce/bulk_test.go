package salesforce_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// simCalls counts the simulator's answers to one endpoint with one status.
func simCalls(sim *salesforcesim.Sim, endpoint string, status int) int {
	for _, c := range sim.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

func TestBulkUpsertMapsMixedResultsBackToInputOrderByExternalID(t *testing.T) {
	t.Parallel()
	sim, c, calls, _ := setup(t, salesforcesim.Config{})
	ctx := context.Background()

	recs := courses("c", 30)
	for i := range recs {
		switch {
		case i%3 == 0:
			recs[i]["skilljar__Title__c"] = strings.Repeat("x", 256)
		case i%3 == 1:
			recs[i]["skilljar__Title__c"] = fmt.Sprintf("Title %d, with \"quotes\",\ncommas and a newline", i)
		}
	}
	res, err := c.BulkUpsert(ctx, course, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(recs) {
		t.Fatalf("%d results for %d records", len(res), len(recs))
	}
	for i, r := range res {
		if r.ExternalID != recs[i][extID] {
			t.Fatalf("result %d is for %q; want %q", i, r.ExternalID, recs[i][extID])
		}
		if i%3 == 0 {
			if r.Success || errorCode(r) != "STRING_TOO_LONG" || r.Errors[0].Message == "" {
				t.Errorf("%s = %+v; want failed with STRING_TOO_LONG and a message", r.ExternalID, r)
			}
			continue
		}
		if !r.Success || !r.Created || r.ID == "" {
			t.Errorf("%s = %+v; want created with an id", r.ExternalID, r)
		}
		row, _ := sim.RecordByExternalID(course, extID, r.ExternalID)
		if row["Id"] != r.ID || row["skilljar__Title__c"] != recs[i]["skilljar__Title__c"] {
			t.Errorf("%s stored as %v; want id %s and title %q", r.ExternalID, row, r.ID, recs[i]["skilljar__Title__c"])
		}
	}
	// Every record was processed, so the unprocessed set cannot hold any: it is not read.
	// The finished job is left for Salesforce to delete after 7 days: a delete costs a call.
	for label, want := range map[string]int{"bulk_create": 1, "bulk_upload": 1, "bulk_close": 1, "bulk_results": 2, "bulk_delete": 0} {
		if got := calls.count(label); got != want {
			t.Errorf("%s calls = %d; want %d", label, got, want)
		}
	}

	// Once fixed, the failed third is created and the rest updated.
	for i := range recs {
		if i%3 == 0 {
			recs[i]["skilljar__Title__c"] = "fixed"
		}
	}
	res, err = c.BulkUpsert(ctx, course, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Success || r.Created != (i%3 == 0) {
			t.Errorf("second run %s = %+v; want success, created=%v", r.ExternalID, r, i%3 == 0)
		}
	}
}

func TestBulkUpsertReportsEveryRecordWhenAllFail(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	recs := courses("c", 5)
	for _, r := range recs {
		r["skilljar__Title__c"] = strings.Repeat("y", 300)
	}
	res, err := c.BulkUpsert(context.Background(), course, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Success || errorCode(r) != "STRING_TOO_LONG" || r.ExternalID != recs[i][extID] {
			t.Errorf("result %d = %+v; want %s failed with STRING_TOO_LONG", i, r, recs[i][extID])
		}
	}
}

func TestBulkUpsertWritesParentReferencesAndTellsNullFromAbsent(t *testing.T) {
	t.Parallel()
	sim, c, _, _ := setup(t, salesforcesim.Config{})
	ctx := context.Background()
	students := mustUpsert(t, c, student, []salesforce.Record{{extID: "s-1"}, {extID: "s-2"}})
	mustUpsert(t, c, course, courses("c", 1))
	mustUpsert(t, c, progress, []salesforce.Record{
		{extID: "p-1", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Score__c": 5.0},
		{extID: "p-2", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Score__c": 7.0},
	})

	recs := []salesforce.Record{
		// Moves to s-2 and clears the score.
		{extID: "p-1", "skilljar__Student__r": salesforce.Record{extID: "s-2"}, "skilljar__Score__c": nil,
			"skilljar__Course__r": map[string]any{extID: "c-0"}},
		// Says nothing about the score, so it stays.
		{extID: "p-2", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Success_Status__c": "PASSED"},
		{extID: "p-3", "skilljar__Student__r": map[string]any{extID: "s-404"}},
	}
	res, err := c.BulkUpsert(ctx, progress, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Success || !res[1].Success {
		t.Fatalf("results = %+v; want p-1 and p-2 written", res)
	}
	if res[2].Success || errorCode(res[2]) != "INVALID_FIELD" || !strings.Contains(res[2].Errors[0].Message, "s-404") {
		t.Errorf("p-3 = %+v; want INVALID_FIELD naming the missing parent", res[2])
	}

	p1, _ := sim.RecordByExternalID(progress, extID, "p-1")
	course0, _ := sim.RecordByExternalID(course, extID, "c-0")
	if p1["skilljar__Student__c"] != students[1].ID || p1["skilljar__Course__c"] != course0["Id"] {
		t.Errorf("p-1 refers to %v and %v; want student %s and course %v", p1["skilljar__Student__c"], p1["skilljar__Course__c"], students[1].ID, course0["Id"])
	}
	if _, ok := p1["skilljar__Score__c"]; ok {
		t.Errorf("p-1 score = %v; a nil value must clear it", p1["skilljar__Score__c"])
	}
	p2, _ := sim.RecordByExternalID(progress, extID, "p-2")
	if p2["skilljar__Score__c"] != 7.0 || p2["skilljar__Success_Status__c"] != "PASSED" {
		t.Errorf("p-2 = %v; an absent key must leave the score at 7", p2)
	}
}

func TestBulkUpsertRetriesLockedRowsThroughCollections(t *testing.T) {
	t.Parallel()
	sim, c, calls, _ := setup(t, salesforcesim.Config{})
	sim.InjectRecordError(course, "c-2", salesforce.CodeUnableToLockRow, 1)

	res, err := c.BulkUpsert(context.Background(), course, extID, courses("c", 5))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Success {
			t.Errorf("%s = %+v; want every record written", r.ExternalID, r)
		}
	}
	if res[2].ExternalID != "c-2" || calls.count("collections_upsert") != 1 {
		t.Errorf("c-2 = %+v after %d collections calls; want it retried through one collections call", res[2], calls.count("collections_upsert"))
	}
	if sim.Count(course) != 5 {
		t.Errorf("org has %d courses; want 5", sim.Count(course))
	}
}

func TestBulkUpsertReportsRecordsOfAFailedJobAsUnprocessed(t *testing.T) {
	t.Parallel()
	sim, c, _, _ := setup(t, salesforcesim.Config{})
	recs := courses("c", 3)
	recs[1]["skilljar__No_Such_Field__c"] = "x"

	res, err := c.BulkUpsert(context.Background(), course, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Success || errorCode(r) != salesforce.CodeBulkUnprocessed || r.ExternalID != recs[i][extID] ||
			!strings.Contains(r.Errors[0].Message, "skilljar__No_Such_Field__c") {
			t.Errorf("result %d = %+v; want %s unprocessed, naming the job's error", i, r, recs[i][extID])
		}
	}
	if sim.Count(course) != 0 {
		t.Errorf("org has %d courses; want 0", sim.Count(course))
	}
}

func TestBulkUpsertAbortsAndDeletesAJobThatOutlastsBulkTimeout(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{BulkBatchDelay: time.Minute})
	cfg := fastConfig(newSimTokens(sim), nil)
	cfg.BulkTimeout = 50 * time.Millisecond
	c := newClient(t, cfg)

	_, err := c.BulkUpsert(context.Background(), course, extID, courses("c", 3))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want one wrapping context.DeadlineExceeded", err)
	}
	if simCalls(sim, "PATCH jobs/ingest/id", 200) != 2 || simCalls(sim, "DELETE jobs/ingest/id", 204) != 1 {
		t.Errorf("calls = %v; want the job closed, aborted and deleted", sim.Calls())
	}
}

func TestBulkUpsertRejectsValuesCSVCannotCarry(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	for name, rec := range map[string]salesforce.Record{
		"slice":           {extID: "c-1", "skilljar__Title__c": []string{"a"}},
		"nil reference":   {extID: "c-1", "skilljar__Course__r": nil},
		"mixed reference": {extID: "c-1", "skilljar__Course__r": "c-0"},
	} {
		recs := []salesforce.Record{rec}
		if name == "mixed reference" {
			recs = append(recs, salesforce.Record{extID: "c-2", "skilljar__Course__r": map[string]any{extID: "c-0"}})
		}
		if _, err := c.BulkUpsert(context.Background(), progress, extID, recs); err == nil {
			t.Errorf("%s: BulkUpsert succeeded; want an error before any call", name)
		}
	}
	if calls.total() != 0 {
		t.Errorf("invalid records reached Salesforce: %d calls", calls.total())
	}
}

func TestBulkUpsertOfACleanJobReadsOnlyTheSuccessfulResults(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	res, err := c.BulkUpsert(context.Background(), course, extID, courses("c", 50))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Success {
			t.Fatalf("%+v", r)
		}
	}
	if got := calls.count("bulk_results"); got != 1 {
		t.Fatalf("a job with no failures read %d result sets; the failed and unprocessed sets are empty and cost a call each", got)
	}
}
