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

func TestDescribeReturnsFieldsWithTheirFlags(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	d, err := c.Describe(context.Background(), progress)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != progress || !d.Createable {
		t.Errorf("describe = %s createable=%v; want %s, createable", d.Name, d.Createable, progress)
	}
	ext, ok := d.Field(extID)
	if !ok || !ext.ExternalID || ext.Type != "string" {
		t.Errorf("%s = %+v, %v; want an external id string field", extID, ext, ok)
	}
	ref, ok := d.Field("SKILLJAR__STUDENT__C")
	if !ok || ref.RelationshipName != "skilljar__Student__r" || len(ref.ReferenceTo) != 1 || ref.ReferenceTo[0] != student {
		t.Errorf("student lookup = %+v, %v; want relationship skilljar__Student__r to %s", ref, ok, student)
	}
}

func TestDescribeOfAnUnknownObjectIsNotFound(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	_, err := c.Describe(context.Background(), "skilljar__Nope__c")
	if apiErr, ok := errors.AsType[*salesforce.APIError](err); !ok || apiErr.Status != 404 {
		t.Errorf("err = %v; want a 404 APIError", err)
	}
}

func TestQueryFollowsNextRecordsURLThroughEveryPage(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	mustUpsert(t, c, course, courses("c", 4500))

	seen := map[string]bool{}
	err := c.Query(context.Background(), "SELECT Id, "+extID+" FROM "+course, func(rec map[string]any) error {
		seen[rec[extID].(string)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4500 {
		t.Errorf("query saw %d distinct courses; want 4500", len(seen))
	}
	if got := calls.count("query"); got != 3 {
		t.Errorf("took %d query calls; want 3 pages of at most 2,000", got)
	}
}

func TestQueryStopsAtTheFirstCallbackError(t *testing.T) {
	t.Parallel()
	_, c, calls, _ := setup(t, salesforcesim.Config{})
	mustUpsert(t, c, course, courses("c", 2500))
	stop := errors.New("enough")
	n := 0
	err := c.Query(context.Background(), "SELECT Id FROM "+course, func(map[string]any) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 || calls.count("query") != 1 {
		t.Errorf("err = %v after %d records and %d calls; want the callback's error after 10 records and 1 call", err, n, calls.count("query"))
	}
}

func TestCountReturnsTotalSize(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	mustUpsert(t, c, course, courses("c", 7))
	ctx := context.Background()
	all, err := c.Count(ctx, "SELECT COUNT() FROM "+course)
	if err != nil || all != 7 {
		t.Errorf("COUNT() = %d, %v; want 7", all, err)
	}
	some, err := c.Count(ctx, "SELECT COUNT() FROM "+course+" WHERE "+extID+" IN ('c-1', 'c-3', 'c-404')")
	if err != nil || some != 2 {
		t.Errorf("COUNT() with IN = %d, %v; want 2", some, err)
	}
}

func TestAMalformedQueryIsAnAPIErrorWithItsCode(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	_, err := c.Count(context.Background(), "SELEKT nonsense")
	if apiErr, ok := errors.AsType[*salesforce.APIError](err); !ok || apiErr.Code != "MALFORMED_QUERY" {
		t.Errorf("err = %v; want a MALFORMED_QUERY APIError", err)
	}
}

func TestQuoteStringEscapesBackslashesBeforeQuotes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`plain`:                 `'plain'`,
		`o'brien+x@example.com`: `'o\'brien+x@example.com'`,
		`a\b`:                   `'a\\b'`,
		`\'`:                    `'\\\''`,
		"line\nbreak\r\ttab":    `'line\nbreak\r\ttab'`,
		"bell\x07":              `'bell\u0007'`,
		`50%_off`:               `'50%_off'`,
	} {
		if got := salesforce.QuoteString(in); got != want {
			t.Errorf("QuoteString(%q) = %s; want %s", in, got, want)
		}
	}
}

func TestQuoteStringRoundTripsHostileValuesThroughARealQuery(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{})
	hostile := []string{
		`o'brien+x@example.com`,
		`back\slash`,
		`trailing backslash\`,
		`\' OR Name != '`,
		"line\nbreak",
		"tab\tand\rcarriage return",
		`"double" quotes`,
		"control\x01char",
		"ünïcødé 🎓",
		`50% off_sale`,
	}
	recs := make([]salesforce.Record, len(hostile))
	for i, v := range hostile {
		recs[i] = salesforce.Record{extID: fmt.Sprintf("s-%d", i), "skilljar__First_Name__c": v}
	}
	recs[0]["skilljar__Email__c"] = hostile[0]
	mustUpsert(t, c, student, recs)
	ctx := context.Background()

	for i, v := range hostile {
		var got []string
		soql := "SELECT " + extID + ", skilljar__First_Name__c FROM " + student + " WHERE skilljar__First_Name__c = " + salesforce.QuoteString(v)
		err := c.Query(ctx, soql, func(rec map[string]any) error {
			got = append(got, rec[extID].(string))
			if rec["skilljar__First_Name__c"] != v {
				t.Errorf("value came back as %q; want %q", rec["skilljar__First_Name__c"], v)
			}
			return nil
		})
		if err != nil {
			t.Errorf("query for %q: %v", v, err)
			continue
		}
		if len(got) != 1 || got[0] != fmt.Sprintf("s-%d", i) {
			t.Errorf("query for %q matched %v; want exactly s-%d", v, got, i)
		}
	}

	in := make([]string, len(hostile))
	for i, v := range hostile {
		in[i] = salesforce.QuoteString(v)
	}
	n, err := c.Count(ctx, "SELECT COUNT() FROM "+student+" WHERE skilljar__First_Name__c IN ("+strings.Join(in, ", ")+")")
	if err != nil || n != len(hostile) {
		t.Errorf("IN over every hostile value counted %d, %v; want %d", n, err, len(hostile))
	}
	n, err = c.Count(ctx, "SELECT COUNT() FROM "+student+" WHERE skilljar__Email__c = "+salesforce.QuoteString("O'Brien+X@example.com"))
	if err != nil || n != 1 {
		t.Errorf("email match counted %d, %v; want 1 (Salesforce compares case-insensitively)", n, err)
	}
}
