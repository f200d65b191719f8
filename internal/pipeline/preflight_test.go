package pipeline_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simclient"
)

// preflight runs the preflight of every mapped object against a simulated org over HTTP.
func preflight(t *testing.T, cfg salesforcesim.Config, m *mapping.Mapping) ([]runstore.Adaptation, error) {
	t.Helper()
	sf, err := salesforcesim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sf.Close() })
	client, err := simclient.Salesforce(sf)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Preflight(context.Background(), client, m, mapping.Order, runstore.Scope{LinkContacts: true})
}

func kinds(as []runstore.Adaptation) map[string]string {
	out := map[string]string{}
	for _, a := range as {
		out[a.SObject+"."+a.Field] = a.Kind
	}
	return out
}

func TestPreflightOnTheDefaultOrgNeedsNoAdaptation(t *testing.T) {
	t.Parallel()
	got, err := preflight(t, salesforcesim.Config{}, mapping.Default())
	if err != nil || len(got) != 0 {
		t.Fatalf("preflight = %+v, %v; want nothing to adapt", got, err)
	}
}

func TestPreflightAdaptsToMasterDetailAutoNumberAndSparseOrgs(t *testing.T) {
	t.Parallel()
	got, err := preflight(t, salesforcesim.Config{Profiles: []string{
		salesforcesim.ProfileMasterDetail, salesforcesim.ProfileAutoNumber, salesforcesim.ProfileSparse}}, mapping.Default())
	if err != nil {
		t.Fatalf("preflight blocked an org it can adapt to: %v", err)
	}
	want := map[string]string{
		"skilljar__Course_Progress__c.skilljar__Student__c":         runstore.AdaptCreateOnly,
		"skilljar__Published_Course__c.skilljar__Course__c":         runstore.AdaptCreateOnly,
		"skilljar__Course_Progress__c.Name":                         runstore.AdaptOmit,
		"skilljar__Course__c.skilljar__Short_Description__c":        runstore.AdaptOmit,
		"skilljar__Published_Course__c.skilljar__Course_Url__c":     runstore.AdaptOmit,
		"skilljar__Course_Progress__c.skilljar__Latest_Activity__c": runstore.AdaptOmit,
		"skilljar__Course_Progress__c.skilljar__Enrollment_Id__c":   runstore.AdaptOmit,
		"skilljar__Course_Progress__c.skilljar__Active__c":          runstore.AdaptOmit,
	}
	if k := kinds(got); !maps(k, want) {
		t.Fatalf("adaptations = %v, want %v", k, want)
	}
	for _, a := range got {
		if a.Object == "" || a.Message == "" || !strings.Contains(a.Message, a.SObject) {
			t.Errorf("adaptation %+v does not say where and why", a)
		}
	}
	create := pipeline.CreateOnlyFields(got)
	if !slices.Equal(create["skilljar__Course_Progress__c"], []string{"skilljar__Student__c"}) {
		t.Fatalf("CreateOnlyFields = %v", create)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPreflightBlocksAMissingConfirmedField(t *testing.T) {
	t.Parallel()
	schema := salesforcesim.DefaultSchema()
	for i := range schema {
		schema[i].Fields = slices.DeleteFunc(schema[i].Fields, func(f salesforcesim.Field) bool { return f.Name == "skilljar__Completed_At__c" })
	}
	_, err := preflight(t, salesforcesim.Config{Schema: schema}, mapping.Default())
	var pe *pipeline.PreflightError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || !strings.Contains(pe.Problems[0], "skilljar__Course_Progress__c.skilljar__Completed_At__c: field not found") {
		t.Fatalf("preflight = %v, want the confirmed field blocking", err)
	}
}

func TestPreflightBlocksAForeignPicklistUntilTheMappingMapsItsValues(t *testing.T) {
	t.Parallel()
	cfg := salesforcesim.Config{Profiles: []string{salesforcesim.ProfilePicklist}}
	_, err := preflight(t, cfg, mapping.Default())
	var pe *pipeline.PreflightError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 {
		t.Fatalf("preflight = %v, want one blocking problem", err)
	}
	line := `"value_map": {"FAILED":"Failed","PASSED":"Passed"}`
	for _, want := range []string{"skilljar__Course_Progress__c.skilljar__Success_Status__c", "takes Passed, Failed, Incomplete",
		"would be sent PASSED, FAILED", `course_progress field "skilljar__Success_Status__c"`, "BACKFILL_MAPPING_FILE", line} {
		if !strings.Contains(pe.Problems[0], want) {
			t.Errorf("problem lacks %q: %s", want, pe.Problems[0])
		}
	}

	// The lines added as the message says, the run may go ahead.
	m, perr := mapping.Parse(withValueMap(t, line))
	if perr != nil {
		t.Fatal(perr)
	}
	if got, err := preflight(t, cfg, m); err != nil || len(got) != 0 {
		t.Fatalf("preflight with the value map = %+v, %v", got, err)
	}

	// A map that misses one value still blocks, naming only that one.
	m, _ = mapping.Parse(withValueMap(t, `"value_map": {"PASSED": "Passed"}`))
	_, err = preflight(t, cfg, m)
	if !errors.As(err, &pe) || !strings.Contains(pe.Problems[0], "would be sent FAILED;") ||
		!strings.Contains(pe.Problems[0], line) {
		t.Fatalf("preflight with half a map = %v", err)
	}
}

// withValueMap is the default mapping file with line added to the Success Status field.
func withValueMap(t *testing.T, line string) []byte {
	t.Helper()
	b, err := os.ReadFile("../mapping/default.json")
	if err != nil {
		t.Fatal(err)
	}
	const field = `{"field": "skilljar__Success_Status__c", `
	if !strings.Contains(string(b), field) {
		t.Fatalf("the default mapping has no %s", field)
	}
	return []byte(strings.Replace(string(b), field, field+line+", ", 1))
}

func TestPreflightWarnsWhenTheExternalIDIsNotUnique(t *testing.T) {
	t.Parallel()
	got, err := preflight(t, salesforcesim.Config{Profiles: []string{salesforcesim.ProfileDirty}}, mapping.Default())
	if err != nil || len(got) != 4 {
		t.Fatalf("preflight = %+v, %v; want a warning per object", got, err)
	}
	for _, a := range got {
		if a.Kind != runstore.AdaptWarn || a.Field != "skilljar__Obfuscated_Id__c" || !strings.Contains(a.Message, "DUPLICATE_EXTERNAL_ID") {
			t.Errorf("adaptation %+v", a)
		}
	}
}
