package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func getDoctor(t *testing.T, e *apitest.Env) doctor.Report {
	t.Helper()
	r := e.Do(t, http.MethodGet, "/v1/doctor", nil)
	requireStatus(t, r, http.StatusOK)
	var rep doctor.Report
	r.JSON(t, &rep)
	return rep
}

// entries returns the report's entries of a status, as "check field: message" lines.
func entries(rep doctor.Report, status string) []string {
	var out []string
	for _, e := range rep.Entries {
		if e.Status == status {
			out = append(out, e.Check+" "+e.Field+": "+e.Message+" | fix: "+e.Fix)
		}
	}
	return out
}

func TestDoctorFindsEverythingFineOnACleanConnectedOrg(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	e.ConnectSalesforce(t)
	rep := getDoctor(t, e)
	if rep.Blocking || len(entries(rep, doctor.Blocking)) > 0 || len(entries(rep, doctor.Adapted)) > 0 {
		t.Fatalf("a clean org should be all fine; blocking %v, adapted %v", entries(rep, doctor.Blocking), entries(rep, doctor.Adapted))
	}
	checks := map[string]bool{}
	for _, en := range rep.Entries {
		checks[en.Check] = true
	}
	for _, c := range []string{doctor.CheckSkilljarKey, doctor.CheckSkilljarDomain, doctor.CheckGrant, doctor.CheckBudget, doctor.CheckMapping, doctor.CheckPermissions} {
		if !checks[c] {
			t.Errorf("the report has no %s entry: %+v", c, rep.Entries)
		}
	}
}

func TestDoctorSaysSalesforceIsNotConnectedButAStartStillQueues(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	rep := getDoctor(t, e)
	b := entries(rep, doctor.Blocking)
	if len(b) != 1 || !strings.HasPrefix(b[0], doctor.CheckGrant) || !strings.Contains(b[0], "connect Salesforce") {
		t.Fatalf("want one blocking grant entry naming the fix, got %v", b)
	}
	// A run waits for the grant (waiting_for_auth), so the missing grant does not refuse it.
	startRun(t, e, map[string]any{"dry_run": true})
}

func TestDoctorBlocksARestrictedPicklistWithTheValueMapLinesAndRefusesTheStartUntilFixed(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5, Salesforce: salesforcesim.Config{Profiles: []string{salesforcesim.ProfilePicklist}}})
	e.ConnectSalesforce(t)
	b := entries(getDoctor(t, e), doctor.Blocking)
	if len(b) != 1 || !strings.Contains(b[0], "skilljar__Success_Status__c") || !strings.Contains(b[0], `"value_map": {`) {
		t.Fatalf("want one blocking entry for Success Status giving the value_map line, got %v", b)
	}
	before := e.Enqueued(t)
	r := e.Do(t, http.MethodPost, "/v1/backfills", map[string]any{})
	body := requireError(t, r, http.StatusUnprocessableEntity, "blocked", "skilljar__Course_Progress__c.skilljar__Success_Status__c")
	if len(body.Error.Fields) != 1 || !strings.Contains(body.Error.Fields[0].Message, `"value_map"`) {
		t.Fatalf("the 422 should list the problem with its fix: %+v", body.Error.Fields)
	}
	if got := e.Enqueued(t); got != before {
		t.Fatalf("a refused start enqueued %d task(s)", got-before)
	}
	// Courses alone do not touch the picklist: that start is not blocked.
	startRun(t, e, map[string]any{"objects": []string{"course"}, "dry_run": true})

	// The value_map the problem asks for, in the mapping the server runs with, lifts the block.
	fixed := mapping.Default()
	o, _ := fixed.Object(mapping.CourseProgress)
	for i := range o.Fields {
		if o.Fields[i].Field == "skilljar__Success_Status__c" {
			o.Fields[i].ValueMap = map[string]string{"PASSED": "Passed", "FAILED": "Failed"}
		}
	}
	e.Doctor.Mapping, e.Engine.Mapping = fixed, fixed
	if b := entries(getDoctor(t, e), doctor.Blocking); len(b) != 0 {
		t.Fatalf("with the value_map nothing should block: %v", b)
	}
	startRun(t, e, map[string]any{})
}

func TestDoctorListsAMasterDetailOrgsAdaptationsAndLetsTheRunStart(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5, Salesforce: salesforcesim.Config{Profiles: []string{salesforcesim.ProfileMasterDetail}}})
	e.ConnectSalesforce(t)
	rep := getDoctor(t, e)
	a := entries(rep, doctor.Adapted)
	if rep.Blocking || len(a) == 0 {
		t.Fatalf("want adaptations and nothing blocking; blocking %v, adapted %v", entries(rep, doctor.Blocking), a)
	}
	for _, line := range a {
		if !strings.Contains(line, "reparented") {
			t.Errorf("unexpected adaptation on master-detail: %s", line)
		}
	}
	startRun(t, e, map[string]any{"dry_run": true})
}

func TestARejectedSkilljarKeyBlocksTheDoctorAndTheStartUntilTheKeyIsFixed(t *testing.T) {
	e := apitest.Start(t, apitest.Options{Users: 5})
	e.ConnectSalesforce(t)
	wrong, err := skilljar.New(skilljar.Config{BaseURL: e.Skilljar.URL(), APIKey: "not-the-key", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.Doctor.Skilljar = wrong
	b := entries(getDoctor(t, e), doctor.Blocking)
	if len(b) != 1 || !strings.Contains(b[0], "rejected the API key") || !strings.Contains(b[0], "SKILLJAR_API_KEY") {
		t.Fatalf("want one blocking entry for the key, got %v", b)
	}
	r := e.Do(t, http.MethodPost, "/v1/backfills", map[string]any{})
	requireError(t, r, http.StatusUnprocessableEntity, "blocked", "SKILLJAR_API_KEY")

	e.Doctor.Skilljar = e.Source
	startRun(t, e, map[string]any{})
}

func TestMappingSuggestionFitsThePicklistOrgAndReviewsTheValueMapItNeeds(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5, Salesforce: salesforcesim.Config{Profiles: []string{salesforcesim.ProfilePicklist, salesforcesim.ProfileSparse}}})
	r := e.Do(t, http.MethodGet, "/v1/mapping/suggestion", nil)
	requireStatus(t, r, http.StatusOK)
	var s mapping.Suggestion
	r.JSON(t, &s)
	if _, err := mapping.Parse(mustJSON(t, s.Mapping)); err != nil {
		t.Fatalf("the suggested mapping does not load: %v", err)
	}
	var picklist, missing bool
	for _, rv := range s.Review {
		picklist = picklist || rv.Object == mapping.CourseProgress && rv.Field == "skilljar__Success_Status__c" && strings.Contains(rv.Note, `"value_map": {`)
		missing = missing || strings.Contains(rv.Note, "is not in the org")
	}
	if !picklist || !missing {
		t.Fatalf("the review should give the picklist's value_map line and the fields the sparse org lacks: %+v", s.Review)
	}
}

func TestDoctorReportsAGrantUnusedPastTheIdleLimitAsLapsed(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	e.ConnectSalesforce(t)
	grant := func() doctor.Entry {
		for _, en := range getDoctor(t, e).Entries {
			if en.Check == doctor.CheckGrant {
				return en
			}
		}
		t.Fatal("no grant entry")
		return doctor.Entry{}
	}
	if g := grant(); g.Status != doctor.Fine || !strings.Contains(g.Message, "would lapse at") {
		t.Fatalf("a fresh grant: %+v; want fine with its lapse date", g)
	}
	e.Doctor.Now = func() time.Time { return time.Now().Add(connection.DefaultIdleLimit + time.Hour) }
	if g := grant(); g.Status != doctor.Blocking || !strings.Contains(g.Message, "expired its refresh token") || !strings.Contains(g.Fix, "reconnect") {
		t.Fatalf("a grant unused past the idle limit: %+v; want it reported as lapsed", g)
	}
	// The run waits for the reconnect rather than being refused.
	startRun(t, e, map[string]any{"dry_run": true})
}

func TestDoctorSaysViewAllDataIsNeededWhenAnUpsertKeyIsNotUnique(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5, Salesforce: salesforcesim.Config{Profiles: []string{salesforcesim.ProfileDirty}}})
	e.ConnectSalesforce(t)
	rep := getDoctor(t, e)
	for _, en := range rep.Entries {
		if en.Check == doctor.CheckPermissions {
			if en.Status != doctor.Adapted || en.Field != "View All Data" || !strings.Contains(en.Message, "cannot be checked") {
				t.Fatalf("permissions entry %+v; want View All Data flagged as needed and uncheckable", en)
			}
			return
		}
	}
	t.Fatalf("no permissions entry: %+v", rep.Entries)
}

// What one report costs: every start pays it too.
func TestADoctorReportCostsOneLimitsCallOneDescribePerObjectAndTwoSkilljarCalls(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5})
	e.ConnectSalesforce(t)
	sfCalls := func() map[string]int {
		m := map[string]int{}
		for _, c := range e.Salesforce.Calls() {
			m[c.Endpoint] += c.Count
		}
		return m
	}
	sfBefore := sfCalls()
	pingBefore, domainsBefore := e.Skilljar.CallCount("GET /v1/ping"), e.Skilljar.CallCount("GET /v1/domains")
	getDoctor(t, e)
	sfAfter := sfCalls()
	var describes, limits, other int
	for ep, n := range sfAfter {
		switch d := n - sfBefore[ep]; {
		case strings.Contains(ep, "describe"):
			describes += d
		case strings.Contains(ep, "limits"):
			limits += d
		default:
			other += d
		}
	}
	if objects := len(e.Engine.Mapping.Objects); describes != objects || limits != 1 || other != 0 {
		t.Errorf("Salesforce calls: %d describes (want %d, one per mapped object), %d limits (want 1), %d others (want 0)", describes, objects, limits, other)
	}
	if p, d := e.Skilljar.CallCount("GET /v1/ping")-pingBefore, e.Skilljar.CallCount("GET /v1/domains")-domainsBefore; p != 1 || d > 1 {
		t.Errorf("Skilljar calls: %d pings (want 1), %d domain lists (want at most 1)", p, d)
	}
}
