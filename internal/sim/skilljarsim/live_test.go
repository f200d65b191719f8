package skilljarsim_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func TestLiveLearnerEnrollmentAndCompletionShowThroughTheAPI(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 150})
	c := newClient(t, s)
	var pc skilljarsim.PublishedCourse
	for _, p := range s.Org().PublishedCoursesIn("learn.example.com") {
		if !p.UniqueProgressPerEnrollment {
			pc = p
			break
		}
	}

	l := s.AddLearner("partners.example.com")
	members := walk[skilljar.DomainUser](c, "/v1/domains/partners.example.com/users")
	if last := members[len(members)-1]; last.User.ID != l.ID || last.User.Email != l.Email {
		t.Errorf("new learner is not last in its domain: last is %+v", last.User)
	}
	users := walk[skilljar.UserOverview](c, "/v1/users?page_size=40")
	if len(users) != 151 || users[150].User.ID != l.ID || users[150].RegistrationCount != 0 {
		t.Fatalf("new learner is not last on /v1/users: %d rows, last %+v", len(users), users[len(users)-1])
	}

	enrolled := s.Enroll(l.ID, pc.ID)
	var ov skilljar.UserOverview
	c.getJSON("/v1/users/"+l.ID, &ov)
	if ov.RegistrationCount != 1 || ov.CompletionCount != 0 || !ov.LatestActivity.Equal(enrolled.EnrolledAt) {
		t.Errorf("after Enroll: %+v, want 1 registration at %v", ov, enrolled.EnrolledAt)
	}
	members = walk[skilljar.DomainUser](c, "/v1/domains/learn.example.com/users")
	if members[len(members)-1].User.ID != l.ID {
		t.Error("enrolling in a learn.example.com course did not add the learner to that domain, last")
	}
	type enrollment struct {
		ID string `json:"id"`
	}
	enr := walk[enrollment](c, "/v1/domains/learn.example.com/published-courses/"+pc.ID+"/enrollments")
	if enr[len(enr)-1].ID != enrolled.EnrollmentID {
		t.Errorf("the new enrollment is not last in %s's enrollments", pc.ID)
	}

	done := s.Complete(enrolled.CourseProgressID, true, 88)
	var rows []skilljar.UserCourseProgress
	c.getJSON("/v1/users/"+l.ID+"/published-courses", &rows)
	if len(rows) != 1 {
		t.Fatalf("%d progress rows, want 1", len(rows))
	}
	cp := rows[0].CourseProgress
	if cp.CompletedAt == nil || !cp.CompletedAt.Equal(*done.CompletedAt) || *cp.SuccessStatus != "PASSED" || *cp.Score != 88 || *cp.MaxScore != 100 {
		t.Errorf("after Complete: %+v", cp)
	}
	c.getJSON("/v1/users/"+l.ID, &ov)
	if ov.CompletionCount != 1 || !ov.LatestActivity.Equal(*done.CompletedAt) {
		t.Errorf("after Complete: %+v", ov)
	}
}

func TestReenrollmentKeepsHistoryAndSplitsProgressWhenUniquePerEnrollment(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 50})
	c := newClient(t, s)
	org := s.Org()
	for _, unique := range []bool{true, false} {
		i := slices.IndexFunc(org.PublishedCourses, func(p skilljarsim.PublishedCourse) bool { return p.UniqueProgressPerEnrollment == unique })
		pc := org.PublishedCourses[i]
		l := s.AddLearner(pc.Domain)
		first := s.Enroll(l.ID, pc.ID)
		s.Complete(first.CourseProgressID, false, 10)
		again := s.Enroll(l.ID, pc.ID)

		var rows []skilljar.UserCourseProgress
		c.getJSON("/v1/users/"+l.ID+"/published-courses", &rows)
		if len(rows) != 1 {
			t.Fatalf("unique=%v: %d rows for one published course, want 1", unique, len(rows))
		}
		r := rows[0]
		if r.EnrollmentID != again.EnrollmentID || len(r.AllEnrollments) != 2 ||
			r.AllEnrollments[0].EnrollmentID != first.EnrollmentID || r.AllEnrollments[0].Active ||
			r.AllEnrollments[1].EnrollmentID != again.EnrollmentID {
			t.Errorf("unique=%v: enrollment %s, history %+v", unique, r.EnrollmentID, r.AllEnrollments)
		}
		newProgress := r.CourseProgress.CourseProgressID != first.CourseProgressID
		if newProgress != unique || (r.CourseProgress.CompletedAt == nil) != unique {
			t.Errorf("unique=%v: progress %s (first %s), completed_at %v", unique, r.CourseProgress.CourseProgressID, first.CourseProgressID, r.CourseProgress.CompletedAt)
		}
		if unique && r.AllEnrollments[0].CourseProgressID != first.CourseProgressID {
			t.Errorf("the old enrollment lost its own course progress id: %+v", r.AllEnrollments[0])
		}
	}

	// Generated history looks the same.
	var row skilljarsim.Progress
	for _, p := range org.Progress {
		if len(p.History) > 0 && slices.IndexFunc(org.PublishedCourses, func(pc skilljarsim.PublishedCourse) bool {
			return pc.ID == p.PublishedCourseID && pc.UniqueProgressPerEnrollment
		}) >= 0 {
			row = p
			break
		}
	}
	if row.CourseProgressID == "" {
		t.Fatal("the generated org has no re-enrollment in a unique-progress course")
	}
	var rows []skilljar.UserCourseProgress
	c.getJSON("/v1/users/"+row.UserID+"/published-courses", &rows)
	i := slices.IndexFunc(rows, func(r skilljar.UserCourseProgress) bool { return r.PublishedCourseID == row.PublishedCourseID })
	ids := map[string]bool{}
	for _, e := range rows[i].AllEnrollments {
		ids[e.CourseProgressID] = true
	}
	if len(rows[i].AllEnrollments) != len(row.History)+1 || len(ids) != len(row.History)+1 {
		t.Errorf("generated re-enrollment: %+v, want %d enrollments with distinct progress ids", rows[i].AllEnrollments, len(row.History)+1)
	}
}

func TestChangeLearnersMovesTheirLatestActivityOnly(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 200})
	c := newClient(t, s)
	before := map[string]skilljar.UserOverview{}
	for _, u := range walk[skilljar.UserOverview](c, "/v1/users?page_size=1000") {
		before[u.User.ID] = u
	}
	changed := s.ChangeLearners(0.1)
	if len(changed) != 20 {
		t.Fatalf("changed %d learners, want 10%% of 200", len(changed))
	}
	for _, u := range walk[skilljar.UserOverview](c, "/v1/users?page_size=1000") {
		b := before[u.User.ID]
		moved := u.LatestActivity.After(*b.LatestActivity)
		if want := slices.Contains(changed, u.User.ID); moved != want {
			t.Errorf("%s: latest_activity %v → %v, changed=%v", u.User.ID, b.LatestActivity, u.LatestActivity, want)
		}
		if !moved && (u.RegistrationCount != b.RegistrationCount || u.CompletionCount != b.CompletionCount) {
			t.Errorf("%s: counts moved without activity", u.User.ID)
		}
	}
}

func TestStartLiveChangesTheOrgUntilStopped(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 100})
	before := s.Org()
	stop := s.StartLive(500)
	deadline := time.Now().Add(5 * time.Second)
	for {
		o := s.Org()
		if len(o.Learners) > len(before.Learners) && len(o.Progress) > len(before.Progress) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new learners and enrollments after 5 s of live change")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	after := s.Org()
	time.Sleep(50 * time.Millisecond)
	if o := s.Org(); len(o.Learners) != len(after.Learners) || len(o.Progress) != len(after.Progress) {
		t.Error("the org kept changing after stop")
	}
	c := newClient(t, s)
	if got := walk[skilljar.UserOverview](c, "/v1/users?page_size=1000"); len(got) != len(after.Learners) {
		t.Errorf("/v1/users lists %d learners, org has %d", len(got), len(after.Learners))
	}
}

// A cursor crawl that starts before new learners arrive sees each learner once, under either
// order: with "created" the newcomers come at the end; with newest_first they land before
// the crawl's cursor, for a later catch-up to find.
func TestCursorCrawlSurvivesLearnersArrivingMidway(t *testing.T) {
	for _, order := range []string{skilljarsim.OrderCreated, skilljarsim.OrderNewestFirst} {
		t.Run(order, func(t *testing.T) {
			s := start(t, skilljarsim.Config{Users: 120, UserOrder: order})
			c := newClient(t, s)
			var page struct {
				Next    *string
				Results []skilljar.UserOverview
			}
			c.getJSON("/v1/users?page_size=50", &page)
			seen := map[string]int{}
			for _, u := range page.Results {
				seen[u.User.ID]++
			}
			added := s.AddLearner()
			for next := page.Next; next != nil; next = page.Next {
				page.Next = nil
				c.getJSON(*next, &page)
				for _, u := range page.Results {
					seen[u.User.ID]++
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s seen %d times", id, n)
				}
			}
			wantNew := order == skilljarsim.OrderCreated
			if (seen[added.ID] == 1) != wantNew || len(seen) != 120+map[bool]int{true: 1}[wantNew] {
				t.Errorf("crawl saw %d learners, newcomer seen=%v", len(seen), seen[added.ID] == 1)
			}
		})
	}
}

// With newest_first, page numbers shift under a crawl when learners arrive: the hazard a
// page-number crawler of domain users must tolerate.
func TestNewestFirstPutsNewLearnersOnPageOne(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 120, Domains: 1, UserOrder: skilljarsim.OrderNewestFirst})
	c := newClient(t, s)
	org := s.Org()
	var page struct{ Results []skilljar.DomainUser }
	c.getJSON("/v1/domains/learn.example.com/users?page_size=10", &page)
	if newest := org.Learners[len(org.Learners)-1]; page.Results[0].User.ID != newest.ID {
		t.Errorf("first row %s, want the newest learner %s", page.Results[0].User.ID, newest.ID)
	}
	lastOnPage1 := page.Results[9].User.ID
	l := s.AddLearner()
	c.getJSON("/v1/domains/learn.example.com/users?page_size=10", &page)
	if page.Results[0].User.ID != l.ID {
		t.Errorf("first row %s, want the new learner", page.Results[0].User.ID)
	}
	c.getJSON("/v1/domains/learn.example.com/users?page_size=10&page=2", &page)
	if page.Results[0].User.ID != lastOnPage1 {
		t.Errorf("page 2 starts with %s, want %s pushed down from page 1", page.Results[0].User.ID, lastOnPage1)
	}
}
