package mapping_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simclient"
)

// orgDescribe describes the simulated org over HTTP, as the doctor does.
func orgDescribe(t *testing.T, cfg salesforcesim.Config) mapping.Describe {
	t.Helper()
	sim, err := salesforcesim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	c, err := simclient.Salesforce(sim)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, sobject string) (*salesforce.SObjectDescribe, error) {
		d, err := c.Describe(ctx, sobject)
		if apiErr, ok := errors.AsType[*salesforce.APIError](err); ok && apiErr.Status == http.StatusNotFound {
			return nil, nil
		}
		return d, err
	}
}

func suggest(t *testing.T, cfg salesforcesim.Config) *mapping.Suggestion {
	t.Helper()
	s, err := mapping.Suggest(t.Context(), mapping.Default(), orgDescribe(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s.Mapping)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mapping.Parse(b); err != nil {
		t.Fatalf("the suggested mapping does not load: %v", err)
	}
	return s
}

func TestSuggestKeepsTheDefaultMappingOnAnOrgThatHasEveryField(t *testing.T) {
	s := suggest(t, salesforcesim.Config{})
	if len(s.Review) != 0 {
		t.Fatalf("nothing differs on the default org, yet: %+v", s.Review)
	}
	want, _ := json.Marshal(mapping.Default())
	got, _ := json.Marshal(s.Mapping)
	if string(got) != string(want) {
		t.Fatalf("the suggestion changed the mapping on an org that fits it:\n%s\nwant\n%s", got, want)
	}
}

func TestSuggestMatchesARenamedFieldByLabelAndNotesEveryDifference(t *testing.T) {
	schema := salesforcesim.DefaultSchema()
	for i := range schema {
		if schema[i].Name != "skilljar__Course_Progress__c" {
			continue
		}
		for j := range schema[i].Fields {
			if schema[i].Fields[j].Name == "skilljar__Completed_At__c" {
				schema[i].Fields[j].Name = "Completion_Date__c" // the org's own field, labelled "Completed At"
			}
		}
	}
	s := suggest(t, salesforcesim.Config{Schema: schema, Profiles: []string{salesforcesim.ProfileMasterDetail}})
	o, _ := s.Mapping.Object(mapping.CourseProgress)
	i := slices.IndexFunc(o.Fields, func(f mapping.Field) bool { return f.Source == "completed_at" })
	if i < 0 || o.Fields[i].Field != "Completion_Date__c" || !strings.HasPrefix(o.Fields[i].Note, mapping.ReviewPrefix) {
		t.Fatalf("completed_at should map to the org's Completion_Date__c with a review note: %+v", o.Fields)
	}
	var notes []string
	for _, r := range s.Review {
		notes = append(notes, r.Object+"."+r.Field+": "+r.Note)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{
		"course_progress.skilljar__Completed_At__c: skilljar__Completed_At__c is not in the org; matched the org's Completion_Date__c by its label \"Completed At\"",
		"master-detail without reparenting",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the review lacks %q:\n%s", want, all)
		}
	}
	if orig, _ := mapping.Default().Object(mapping.CourseProgress); slices.ContainsFunc(orig.Fields, func(f mapping.Field) bool { return f.Field == "Completion_Date__c" }) {
		t.Fatal("Suggest changed the mapping it was given")
	}
}

func TestSuggestNotesAFieldTheOrgLacks(t *testing.T) {
	s := suggest(t, salesforcesim.Config{Profiles: []string{salesforcesim.ProfileSparse}})
	var notes []string
	for _, r := range s.Review {
		notes = append(notes, r.Field+": "+r.Note)
	}
	all := strings.Join(notes, "\n")
	if !strings.Contains(all, "is not in the org and no field is labelled") || !strings.Contains(all, "runs leave") {
		t.Fatalf("want the missing fields in the review:\n%s", all)
	}
}
