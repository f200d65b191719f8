package salesforce_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestUpsertCreatesThenUpdatesAndReportsInInputOrder(t *testing.T) {
	t.Parallel()
	sim, c, _, _ := setup(t, salesforcesim.Config{})
	ctx := context.Background()

	first := courses("c", 3)
	res := mustUpsert(t, c, course, first)
	for i, r := range res {
		if !r.Created || r.ID == "" || r.ExternalID != fmt.Sprintf("c-%d", i) {
			t.Errorf("first write, result %d = %+v; want created with an id and external id c-%d", i, r, i)
		}
	}
	if _, ok := first[0]["attributes"]; ok {
		t.Error("Upsert added attributes to the caller's record")
	}

	// Existing rows in a new order, with a new row between them.
	second := []salesforce.Record{
		{extID: "c-2", "skilljar__Title__c": "Renamed"},
		{extID: "c-new", "skilljar__Title__c": "New"},
		{extID: "c-0"},
	}
	res, err := c.Upsert(ctx, course, extID, second)
	if err != nil {
		t.Fatal(err)
	}
	wantCreated := []bool{false, true, false}
	for i, r := range res {
		if !r.Success || r.Created != wantCreated[i] || r.ExternalID != second[i][extID] {
			t.Errorf("second write, result %d = %+v; want success, created=%v, external id %v", i, r, wantCreated[i], second[i][extID])
		}
	}
	row, _ := sim.RecordByExternalID(course, extID, "c-2")
	if row["skilljar__Title__c"] != "Renamed" {
		t.Errorf("c-2 title = %v; want Renamed", row["skilljar__Title__c"])
	}
	row, _ = sim.RecordByExternalID(course, extID, "c-0")
	if row["skilljar__Title__c"] != "Course 0" {
		t.Errorf("c-0 title = %v; an absent key must leave the field unchanged", row["skilljar__Title__c"])
	}
	if got := sim.Count(course); got != 4 {
		t.Errorf("org has %d courses; want 4", got)
	}
}

func TestUpsertSplitsIntoCallsOfAtMost200Records(t *testing.T) {
	t.Parallel()
	sim, c, calls, _ := setup(t, salesforcesim.Config{})
	res := mustUpsert(t, c, course, courses("c", 450))
	if len(res) != 450 {
		t.Fatalf("got %d results for 450 records", len(res))
	}
	for i, r := range res {
		if r.ExternalID != fmt.Sprintf("c-%d", i) {
			t.Fatalf("result %d is for %s; results must follow input order", i, r.ExternalID)
		}
	}
	if got := calls.count("collections_upsert"); got != 3 {
		t.Errorf("450 records took %d calls; want 3 (200+200+50)", got)
	}
	if got := sim.Count(course); got != 450 {
		t.Errorf("org has %d courses; want 450", got)
	}
}

func TestUpsertReturnsEveryRecordErrorWithItsCode(t *testing.T) {
	t.Parallel()
	sim, c, _, _ := setup(t, salesforcesim.Config{})
	mustUpsert(t, c, student, []salesforce.Record{{extID: "s-1", "skilljar__Email__c": "a@example.com"}})
	sim.SetFieldAccess(progress, "skilljar__Score__c", false, false)

	recs := []salesforce.Record{
		{extID: "p-ok", "skilljar__Student__r": map[string]any{extID: "s-1"}},
		{extID: "p-long", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Enrollment_Id__c": strings.Repeat("x", 256)},
		{extID: "p-nostudent"},
		{extID: "p-noparent", "skilljar__Student__r": map[string]any{extID: "s-missing"}},
		{extID: "p-denied", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Score__c": 3.0},
		{extID: "p-picklist", "skilljar__Student__r": map[string]any{extID: "s-1"}, "skilljar__Success_Status__c": "MAYBE"},
		{extID: "p-dup", "skilljar__Student__r": map[string]any{extID: "s-1"}},
		{extID: "p-dup", "skilljar__Student__r": map[string]any{extID: "s-1"}},
	}
	res, err := c.Upsert(context.Background(), progress, extID, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "STRING_TOO_LONG", "REQUIRED_FIELD_MISSING", "INVALID_FIELD",
		"INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "DUPLICATE_VALUE", "DUPLICATE_VALUE"}
	for i, r := range res {
		if got := errorCode(r); got != want[i] || r.Success != (want[i] == "") {
			t.Errorf("%s: success=%v code=%q (%+v); want code %q", recs[i][extID], r.Success, got, r.Errors, want[i])
		}
		if r.ExternalID != recs[i][extID] {
			t.Errorf("result %d names %q; want %q", i, r.ExternalID, recs[i][extID])
		}
		if !r.Success && r.Errors[0].Message == "" {
			t.Errorf("%s: error without a message", r.ExternalID)
		}
	}
	if got := sim.Count(progress); got != 1 {
		t.Errorf("org has %d progress rows; only p-ok should be written", got)
	}
}

func TestUpsertReturnsAWholeRequestRejectionWithoutRetrying(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	_, err := c.Upsert(context.Background(), course, extID, []salesforce.Record{{extID: "c-1", "skilljar__No_Such__c": "x"}})
	apiErr, ok := errors.AsType[*salesforce.APIError](err)
	if !ok || apiErr.Status != 400 || apiErr.Code != "INVALID_FIELD" {
		t.Fatalf("err = %v; want a 400 INVALID_FIELD APIError", err)
	}
	if errors.Is(err, salesforce.ErrUnavailable) || calls.count("collections_upsert") != 1 {
		t.Errorf("a malformed request was treated as transient (%d calls)", calls.count("collections_upsert"))
	}
}

func TestUpsertRetriesOnlyLockedRecordsUntilTheySucceed(t *testing.T) {
	t.Parallel()
	sim, c, calls, _ := setup(t, salesforcesim.Config{})
	sim.InjectRecordError(course, "c-1", salesforce.CodeUnableToLockRow, 2)

	res := mustUpsert(t, c, course, courses("c", 3))
	if res[1].ExternalID != "c-1" || !res[1].Created {
		t.Errorf("locked record's final result = %+v; want created c-1", res[1])
	}
	if got := calls.count("collections_upsert"); got != 3 {
		t.Errorf("took %d calls; want 1 plus 2 lock retries", got)
	}
	writes := map[string]int{}
	for _, w := range sim.WriteLog() {
		writes[w.ExternalID]++
	}
	if writes["c-0"] != 1 || writes["c-2"] != 1 || writes["c-1"] != 1 {
		t.Errorf("writes per record = %v; the retries must carry only the locked record", writes)
	}
}

func TestUpsertReportsALockedRecordAsFailedOnceRetriesRunOut(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{})
	calls := newCalls()
	cfg := fastConfig(newSimTokens(sim), calls)
	cfg.LockRetries = 2
	c := newClient(t, cfg)
	sim.InjectRecordError(course, "c-0", salesforce.CodeUnableToLockRow, 10)

	res, err := c.Upsert(context.Background(), course, extID, courses("c", 2))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Success || errorCode(res[0]) != salesforce.CodeUnableToLockRow {
		t.Errorf("c-0 = %+v; want failed with UNABLE_TO_LOCK_ROW", res[0])
	}
	if !res[1].Success {
		t.Errorf("c-1 = %+v; want success", res[1])
	}
	if got := calls.count("collections_upsert"); got != 3 {
		t.Errorf("took %d calls; want 1 plus LockRetries=2", got)
	}
}

func TestUpsertRejectsNamesThatAreNotAPINames(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	for _, names := range [][2]string{{"Course/../x", extID}, {course, "Ext Id"}, {"", extID}} {
		if _, err := c.Upsert(context.Background(), names[0], names[1], courses("c", 1)); err == nil {
			t.Errorf("Upsert(%q, %q) succeeded; want a validation error", names[0], names[1])
		}
	}
	if calls.total() != 0 {
		t.Errorf("invalid names reached Salesforce: %d calls", calls.total())
	}
}
