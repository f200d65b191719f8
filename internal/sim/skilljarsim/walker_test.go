package skilljarsim_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// The crawl order of reference §5, with every list endpoint, checked against the generator.
func TestWalkerReadsEveryListEndpointAndMatchesTheGeneratedOrg(t *testing.T) {
	s := start(t, skilljarsim.Config{Seed: 7, Domains: 4, Users: 300, Courses: 12})
	org := s.Org()
	c := newClient(t, s)

	domains := walk[skilljar.Domain](c, "/v1/domains")
	if len(domains) != len(org.Domains) {
		t.Fatalf("domains: got %d, generated %d", len(domains), len(org.Domains))
	}
	learnersSeen := map[string]bool{}
	enrollments := 0
	for i, d := range domains {
		if d.Name != org.Domains[i].Name || d.ID != org.Domains[i].ID {
			t.Errorf("domain %d: got %s/%s, generated %s/%s", i, d.ID, d.Name, org.Domains[i].ID, org.Domains[i].Name)
		}
		users := walk[skilljar.DomainUser](c, "/v1/domains/"+d.Name+"/users?page_size=37")
		want := org.LearnersIn(d.Name)
		if len(users) != len(want) {
			t.Fatalf("%s users: got %d, generated %d", d.Name, len(users), len(want))
		}
		for j, u := range users {
			if u.User.ID != want[j].ID || u.User.Email != want[j].Email || u.User.FirstName != want[j].FirstName {
				t.Fatalf("%s user %d: got %+v, generated %+v", d.Name, j, u.User, want[j])
			}
			learnersSeen[u.User.ID] = true
		}

		pcs := walk[skilljar.PublishedCourse](c, "/v1/domains/"+d.Name+"/published-courses")
		wantPCs := org.PublishedCoursesIn(d.Name)
		if len(pcs) != len(wantPCs) {
			t.Fatalf("%s published courses: got %d, generated %d", d.Name, len(pcs), len(wantPCs))
		}
		for j, pc := range pcs {
			if pc.ID != wantPCs[j].ID || pc.Course.ID != wantPCs[j].CourseID || pc.UniqueProgressPerEnrollment != wantPCs[j].UniqueProgressPerEnrollment {
				t.Errorf("%s published course %d: got %+v, generated %+v", d.Name, j, pc, wantPCs[j])
			}
			type enrollment struct {
				ID   string           `json:"id"`
				User skilljar.UserRef `json:"user"`
			}
			got := walk[enrollment](c, "/v1/domains/"+d.Name+"/published-courses/"+pc.ID+"/enrollments?page_size=50")
			wantEnr := org.EnrollmentsOf(pc.ID)
			if len(got) != len(wantEnr) {
				t.Fatalf("enrollments of %s: got %d, generated %d", pc.ID, len(got), len(wantEnr))
			}
			for k := range got {
				if got[k].ID != wantEnr[k].EnrollmentID {
					t.Fatalf("enrollment %d of %s: got %s, generated %s", k, pc.ID, got[k].ID, wantEnr[k].EnrollmentID)
				}
			}
			enrollments += len(got)
		}
	}
	if len(learnersSeen) != len(org.Learners) {
		t.Errorf("domain user lists cover %d learners, generated %d", len(learnersSeen), len(org.Learners))
	}

	courses := walk[skilljar.Course](c, "/v1/courses?page_size=5")
	if len(courses) != len(org.Courses) {
		t.Fatalf("courses: got %d, generated %d", len(courses), len(org.Courses))
	}
	for i, course := range courses {
		if course.ID != org.Courses[i].ID || course.Title != org.Courses[i].Title {
			t.Errorf("course %d: got %s %q, generated %s %q", i, course.ID, course.Title, org.Courses[i].ID, org.Courses[i].Title)
		}
		type lesson struct {
			ID       string `json:"id"`
			CourseID string `json:"course_id"`
		}
		lessons := walk[lesson](c, "/v1/lessons?course_id="+course.ID+"&page_size=4")
		if len(lessons) != org.Courses[i].LessonCount() {
			t.Errorf("lessons of %s: got %d, generated %d", course.ID, len(lessons), org.Courses[i].LessonCount())
		}
	}

	overviews := walk[skilljar.UserOverview](c, "/v1/users?page_size=64")
	if len(overviews) != len(org.Learners) {
		t.Fatalf("/v1/users: got %d, generated %d", len(overviews), len(org.Learners))
	}
	progressRows, history := 0, 0
	for i, ov := range overviews {
		l := org.Learners[i]
		want, _ := org.Overview(l.ID)
		if ov.User.ID != l.ID || ov.RegistrationCount != want.RegistrationCount || ov.CompletionCount != want.CompletionCount ||
			!ov.LatestActivity.Equal(want.LatestActivity) || !ov.SignedUpAt.Equal(l.SignedUpAt) {
			t.Fatalf("/v1/users row %d: got %+v, generated %+v %+v", i, ov, l, want)
		}

		var rows []skilljar.UserCourseProgress // a bare array, not an envelope
		c.getJSON("/v1/users/"+url.PathEscape(l.ID)+"/published-courses", &rows)
		wantRows := org.ProgressOf(l.ID)
		if len(rows) != len(wantRows) {
			t.Fatalf("progress of %s: got %d rows, generated %d", l.ID, len(rows), len(wantRows))
		}
		for j, r := range rows {
			w := wantRows[j]
			if r.CourseProgress.CourseProgressID != w.CourseProgressID || r.PublishedCourseID != w.PublishedCourseID ||
				r.DomainName != w.Domain || (r.CourseProgress.CompletedAt != nil) != w.Completed() ||
				len(r.AllEnrollments) != len(w.History)+1 {
				t.Fatalf("progress row %d of %s: got %+v, generated %+v", j, l.ID, r, w)
			}
			history += len(w.History)
		}
		progressRows += len(rows)
	}
	if progressRows != len(org.Progress) || enrollments != progressRows+history {
		t.Errorf("progress rows %d (generated %d), enrollments %d (want rows + history = %d)",
			progressRows, len(org.Progress), enrollments, progressRows+history)
	}
	if got, want := s.CallCount("GET /v1/users/{id}/published-courses"), len(org.Learners); got != want {
		t.Errorf("recorded %d progress calls, made %d", got, want)
	}
	if i := slices.IndexFunc(s.Calls(), func(c skilljarsim.CallStat) bool { return c.Status != 200 }); i >= 0 {
		t.Errorf("a clean walk got a non-200: %+v", s.Calls()[i])
	}
	t.Logf("walked with %d calls", s.TotalCalls())
}
