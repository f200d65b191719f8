// Package simcheck compares a simulated Salesforce org with a simulated Skilljar org, record
// by record and field by field, under the default mapping. It is written from the mapping's
// intent, not from the mapping code, so it can catch the engine getting the mapping wrong.
package simcheck

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

const ext = "skilljar__Obfuscated_Id__c"

// Report is the outcome of a comparison.
type Report struct {
	// Expected and Actual count records per object; MissingByObject counts, per object,
	// the expected records Salesforce lacks (all of them, past MaxDiffs too).
	Expected, Actual, MissingByObject map[string]int
	// Diffs lists the differences found, at most MaxDiffs of them.
	Diffs []string
	// More counts differences beyond MaxDiffs.
	More int
	// Missing counts source records Salesforce lacks, Mismatched records it holds with a
	// field that differs, and Extra records it holds beyond the source's (duplicates or
	// strays).
	Missing, Mismatched, Extra int
}

// MaxDiffs bounds the differences a report lists.
const MaxDiffs = 50

// Exact reports whether Salesforce holds exactly the expected records and values.
func (r Report) Exact() bool { return len(r.Diffs) == 0 }

func (r Report) String() string {
	if r.Exact() {
		return "exact"
	}
	s := strings.Join(r.Diffs, "\n")
	if r.More > 0 {
		s += fmt.Sprintf("\n… and %d more", r.More)
	}
	return s
}

type checker struct {
	sf     *salesforcesim.Sim
	report *Report
}

func (c *checker) diff(format string, args ...any) {
	if len(c.report.Diffs) >= MaxDiffs {
		c.report.More++
		return
	}
	c.report.Diffs = append(c.report.Diffs, fmt.Sprintf(format, args...))
}

// Compare checks that Salesforce holds every record of org in the given domains (all domains
// when none are given) with every mapped field as the default mapping writes it, and nothing
// else.
func Compare(org skilljarsim.Org, sf *salesforcesim.Sim, domains ...string) Report {
	allowed := map[string]bool{}
	for _, d := range domains {
		allowed[d] = true
	}
	in := func(d string) bool { return len(allowed) == 0 || allowed[d] }
	c := &checker{sf: sf, report: &Report{Expected: map[string]int{}, Actual: map[string]int{}, MissingByObject: map[string]int{}}}

	courses := map[string]skilljarsim.Course{}
	for _, co := range org.Courses {
		courses[co.ID] = co
		c.expect("skilljar__Course__c", co.ID, map[string]any{
			"Name": truncate(co.Title, 80), "skilljar__Title__c": co.Title,
			"skilljar__Short_Description__c": co.ShortDescription,
		})
	}
	for _, pc := range org.PublishedCourses {
		if !in(pc.Domain) {
			continue
		}
		c.expect("skilljar__Published_Course__c", pc.ID, map[string]any{
			"Name": truncate(courses[pc.CourseID].Title, 80), "skilljar__Course__c": c.id("skilljar__Course__c", pc.CourseID),
			"skilljar__Domain_Name__c": pc.Domain, "skilljar__Course_Url__c": pc.CourseURL,
		})
	}
	for _, l := range org.Learners {
		member := false
		for _, m := range l.Memberships {
			member = member || in(m.Domain)
		}
		if !member {
			continue
		}
		c.expect("skilljar__Student__c", l.ID, map[string]any{
			"Name":                    truncate(strings.TrimSpace(l.FirstName+" "+l.LastName), 80),
			"skilljar__Email__c":      l.Email,
			"skilljar__First_Name__c": l.FirstName, "skilljar__Last_Name__c": l.LastName,
		})
	}
	for _, p := range org.Progress {
		if !in(p.Domain) {
			continue
		}
		refs := map[string]any{
			"Name":                          truncate(courses[p.CourseID].Title, 80),
			"skilljar__Student__c":          c.id("skilljar__Student__c", p.UserID),
			"skilljar__Course__c":           c.id("skilljar__Course__c", p.CourseID),
			"skilljar__Published_Course__c": c.id("skilljar__Published_Course__c", p.PublishedCourseID),
		}
		want := map[string]any{
			"skilljar__Enrolled_At__c": ms(p.EnrolledAt), "skilljar__Completed_At__c": msPtr(p.CompletedAt),
			"skilljar__Success_Status__c": p.SuccessStatus, "skilljar__Score__c": p.Score,
			"skilljar__Max_Score__c": p.MaxScore, "skilljar__Latest_Activity__c": ms(p.LatestActivity),
			"skilljar__Enrollment_Id__c": p.EnrollmentID, "skilljar__Active__c": p.Active,
		}
		for k, v := range refs {
			want[k] = v
		}
		c.expect("skilljar__Course_Progress__c", p.CourseProgressID, want)
		for _, h := range p.History {
			if h.CourseProgressID == p.CourseProgressID || h.CourseProgressID == "" {
				continue
			}
			// An earlier enrollment's progress: only what the API still says about it.
			hist := map[string]any{"skilljar__Enrollment_Id__c": h.EnrollmentID, "skilljar__Active__c": h.Active}
			for k, v := range refs {
				hist[k] = v
			}
			c.expect("skilljar__Course_Progress__c", h.CourseProgressID, hist)
		}
	}
	for _, obj := range []string{"skilljar__Course__c", "skilljar__Published_Course__c", "skilljar__Student__c", "skilljar__Course_Progress__c"} {
		c.report.Actual[obj] = sf.Count(obj)
		c.report.Extra += max(0, c.report.Actual[obj]-(c.report.Expected[obj]-c.report.MissingByObject[obj]))
		if c.report.Actual[obj] != c.report.Expected[obj] {
			c.diff("%s: Salesforce holds %d records, the source has %d", obj, c.report.Actual[obj], c.report.Expected[obj])
		}
	}
	return *c.report
}

// id is the Salesforce Id of the record with that external id, "" when missing.
func (c *checker) id(sobject, extID string) string {
	r, ok := c.sf.RecordByExternalID(sobject, ext, extID)
	if !ok {
		return ""
	}
	id, _ := r["Id"].(string)
	return id
}

// expect checks that the record exists with the wanted fields; fields not named are not
// compared (record counts catch records that should not be there), nor are fields no client
// can write in this org (absent, or auto-numbered).
func (c *checker) expect(sobject, extID string, want map[string]any) {
	c.report.Expected[sobject]++
	got, ok := c.sf.RecordByExternalID(sobject, ext, extID)
	if !ok {
		c.report.Missing++
		c.report.MissingByObject[sobject]++
		c.diff("%s %s: missing in Salesforce", sobject, extID)
		return
	}
	mismatched := false
	for field, w := range want {
		if !c.sf.Writable(sobject, field) {
			continue
		}
		if !equal(w, got[field]) {
			mismatched = true
			c.diff("%s %s: %s is %s, want %s", sobject, extID, field, show(got[field]), show(w))
		}
	}
	if mismatched {
		c.report.Mismatched++
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func msPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

// equal compares an expected value with a stored one; Salesforce stores an empty string as
// no value, so "" and absent are the same.
func equal(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case string:
		g, _ := got.(string)
		return w == g
	case *float64:
		if w == nil {
			return got == nil
		}
		return equal(*w, got)
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(w-g) < 1e-9
	case time.Time:
		g, ok := got.(time.Time)
		return ok && w.Equal(g)
	case bool:
		g, ok := got.(bool)
		return ok && w == g
	}
	return fmt.Sprint(want) == fmt.Sprint(got)
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "empty"
	case *float64:
		if x == nil {
			return "empty"
		}
		return fmt.Sprint(*x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}

// Replays counts writes of records Salesforce had already accepted: after a crash, the
// batch a worker wrote but did not checkpoint is written again.
func Replays(sf *salesforcesim.Sim) int {
	seen := map[string]bool{}
	n := 0
	for _, w := range sf.WriteLog() {
		k := w.SObject + "/" + w.ExternalID
		if seen[k] {
			n++
		}
		seen[k] = true
	}
	return n
}
