package skilljarsim

import (
	"net/http"
	"slices"
	"time"
)

// The views. apiCall holds s.mu for reading while one runs. Endpoint numbers (E1...) refer
// to the table in reference/skilljar.md §2.

// ping is E1: an empty 200 for an authenticated caller.
func (s *Sim) ping(*http.Request) response { return response{status: http.StatusOK} }

// listDomains is E2: 100 per page, page_size ignored.
func (s *Sim) listDomains(r *http.Request) response {
	ds := s.org.Domains
	return numberPage(r, len(ds), false, func(i int) wireDomain { return toWireDomain(ds[i]) })
}

// getDomain is E3.
func (s *Sim) getDomain(r *http.Request) response {
	d, ok := s.org.idx.domainAt[r.PathValue("domain")]
	if !ok {
		return notFound()
	}
	return jsonResponse(http.StatusOK, toWireDomain(s.org.Domains[d]))
}

// listDomainUsers is E4, filterable by user__email, user__first_name, user__last_name
// (exact, case-sensitive) and active.
func (s *Sim) listDomainUsers(r *http.Request) response {
	name := r.PathValue("domain")
	d, ok := s.org.idx.domainAt[name]
	if !ok {
		return notFound()
	}
	q := r.URL.Query()
	active, filterActive := parseBool(q.Get("active"))
	rows := s.filter(s.org.idx.members[d], q.Has("user__email") || q.Has("user__first_name") || q.Has("user__last_name") || filterActive,
		func(l *Learner) bool {
			return (!q.Has("user__email") || l.Email == q.Get("user__email")) &&
				(!q.Has("user__first_name") || l.FirstName == q.Get("user__first_name")) &&
				(!q.Has("user__last_name") || l.LastName == q.Get("user__last_name")) &&
				(!filterActive || s.org.membership(s.org.idx.learnerAt[l.ID], name).Active == active)
		})
	withSignup, _ := parseBool(q.Get("include_signup_field_data"))
	at := s.inUserOrder(rows, func(l int32) time.Time { return s.org.membership(l, name).EnrolledAt })
	return numberPage(r, len(rows), true, func(i int) wireDomainUser {
		l := at(i)
		return toWireDomainUser(&s.org.Learners[l], s.org.membership(l, name), withSignup)
	})
}

// getDomainUser is E5: a member with their signup field answers.
func (s *Sim) getDomainUser(r *http.Request) response {
	name := r.PathValue("domain")
	l, ok := s.org.idx.learnerAt[r.PathValue("id")]
	if !ok {
		return notFound()
	}
	m := s.org.membership(l, name)
	if m == nil {
		return notFound()
	}
	return jsonResponse(http.StatusOK, toWireDomainUser(&s.org.Learners[l], m, true))
}

// listUsers is E8: cursor-paged by default, page-numbered (with count) when the request
// names a page. Filterable by email, first_name, last_name and is_inactive.
func (s *Sim) listUsers(r *http.Request) response {
	q := r.URL.Query()
	inactive, filterInactive := parseBool(q.Get("is_inactive"))
	rows := s.filter(s.allLearners(), q.Has("email") || q.Has("first_name") || q.Has("last_name") || filterInactive,
		func(l *Learner) bool {
			return (!q.Has("email") || l.Email == q.Get("email")) &&
				(!q.Has("first_name") || l.FirstName == q.Get("first_name")) &&
				(!q.Has("last_name") || l.LastName == q.Get("last_name")) &&
				(!filterInactive || (l.InactiveAt != nil) == inactive)
		})
	signedUp := func(l int32) time.Time { return s.org.Learners[l].SignedUpAt }
	var at func(i int) int32
	row := func(i int) wireUserOverview {
		l := at(i)
		return toWireUserOverview(&s.org.Learners[l], s.org.overview(s.org.idx, l))
	}
	if q.Has("page") {
		at = s.inUserOrder(rows, signedUp)
		return numberPage(r, len(rows), true, row)
	}
	at = s.inUserOrder(rows, nil)
	key := func(i int) time.Time { return signedUp(at(i)) }
	return cursorPage(r, len(rows), s.cfg.UserOrder != OrderNewestFirst, key, row)
}

// getUser is E9.
func (s *Sim) getUser(r *http.Request) response {
	l, ok := s.org.idx.learnerAt[r.PathValue("id")]
	if !ok {
		return notFound()
	}
	return jsonResponse(http.StatusOK, toWireUserOverview(&s.org.Learners[l], s.org.overview(s.org.idx, l)))
}

// listUserProgress is E17: a bare JSON array, unpaged, one element per published course the
// learner is enrolled in, across all domains.
func (s *Sim) listUserProgress(r *http.Request) response {
	l, ok := s.org.idx.learnerAt[r.PathValue("id")]
	if !ok {
		return notFound()
	}
	out := make([]wireUserCourseProgress, 0, len(s.org.idx.progressOf[l]))
	for _, p := range s.org.idx.progressOf[l] {
		row := &s.org.Progress[p]
		out = append(out, toWireUserCourseProgress(row, s.course(row.CourseID)))
	}
	return jsonResponse(http.StatusOK, out)
}

// listCourses is E10, filterable by label__name.
func (s *Sim) listCourses(r *http.Request) response {
	label := r.URL.Query().Get("label__name")
	var rows []*Course
	for i := range s.org.Courses {
		if c := &s.org.Courses[i]; label == "" || slices.Contains(c.Labels, label) {
			rows = append(rows, c)
		}
	}
	return numberPage(r, len(rows), true, func(i int) wireCourse { return toWireCourse(rows[i]) })
}

// getCourse is E11.
func (s *Sim) getCourse(r *http.Request) response {
	i, ok := s.org.idx.courseAt[r.PathValue("id")]
	if !ok {
		return notFound()
	}
	return jsonResponse(http.StatusOK, toWireCourse(&s.org.Courses[i]))
}

// listLessons is E12. course_id is required; the 400 body follows django-filter's
// field-error shape (UNCONFIRMED). An unknown course filters to an empty list.
func (s *Sim) listLessons(r *http.Request) response {
	id := r.URL.Query().Get("course_id")
	if id == "" {
		return jsonResponse(http.StatusBadRequest, map[string][]string{"course_id": {"This field is required."}})
	}
	var lessons []Lesson
	if i, ok := s.org.idx.courseAt[id]; ok {
		lessons = s.org.Courses[i].Lessons
	}
	return numberPage(r, len(lessons), true, func(i int) wireLesson {
		l := lessons[i]
		return wireLesson{ID: l.ID, CourseID: id, Title: l.Title, Type: l.Type, Order: l.Order, Optional: l.Optional, TimeSeconds: l.TimeSeconds}
	})
}

// listPublishedCourses is E13: 100 per page, page_size ignored, filterable by course__id.
func (s *Sim) listPublishedCourses(r *http.Request) response {
	d, ok := s.org.idx.domainAt[r.PathValue("domain")]
	if !ok {
		return notFound()
	}
	courseID := r.URL.Query().Get("course__id")
	var rows []*PublishedCourse
	for _, i := range s.org.idx.pcsIn[d] {
		if pc := &s.org.PublishedCourses[i]; courseID == "" || pc.CourseID == courseID {
			rows = append(rows, pc)
		}
	}
	return numberPage(r, len(rows), false, func(i int) wirePublishedCourse {
		return toWirePublishedCourse(rows[i], s.course(rows[i].CourseID))
	})
}

// getPublishedCourse is E14.
func (s *Sim) getPublishedCourse(r *http.Request) response {
	pc, ok := s.publishedCourse(r)
	if !ok {
		return notFound()
	}
	return jsonResponse(http.StatusOK, toWirePublishedCourse(pc, s.course(pc.CourseID)))
}

// listEnrollments is E15: every enrollment in the published course, re-enrollments
// included, oldest first.
func (s *Sim) listEnrollments(r *http.Request) response {
	pc, ok := s.publishedCourse(r)
	if !ok {
		return notFound()
	}
	refs := s.org.idx.enrollmentsOf[s.org.idx.pcAt[pc.ID]]
	return numberPage(r, len(refs), true, func(i int) wireEnrollment {
		e := s.org.enrollment(refs[i])
		l := &s.org.Learners[s.org.idx.learnerAt[s.org.Progress[refs[i].progress].UserID]]
		return wireEnrollment{ID: e.EnrollmentID, User: toWireUser(l, false), EnrolledAt: stamp(e.EnrolledAt), ExpiresAt: stampPtr(e.ExpiresAt), Active: e.Active}
	})
}

// publishedCourse resolves {domain}/published-courses/{id}; a course published to another
// domain is not found here.
func (s *Sim) publishedCourse(r *http.Request) (*PublishedCourse, bool) {
	i, ok := s.org.idx.pcAt[r.PathValue("id")]
	if !ok || s.org.PublishedCourses[i].Domain != r.PathValue("domain") {
		return nil, false
	}
	return &s.org.PublishedCourses[i], true
}

func (s *Sim) course(id string) *Course { return &s.org.Courses[s.org.idx.courseAt[id]] }

// allLearners lists every learner by sign-up; building it is cheap next to rendering a page.
func (s *Sim) allLearners() []int32 {
	all := make([]int32, len(s.org.Learners))
	for i := range all {
		all[i] = int32(i)
	}
	return all
}

// filter keeps the learners that pass keep; without active filters it returns rows as is.
func (s *Sim) filter(rows []int32, active bool, keep func(*Learner) bool) []int32 {
	if !active {
		return rows
	}
	var out []int32
	for _, l := range rows {
		if keep(&s.org.Learners[l]) {
			out = append(out, l)
		}
	}
	return out
}

// inUserOrder maps a list position to a learner under Config.UserOrder. rows are in key
// order; key is nil where the list must keep that order (a cursor-paged one).
func (s *Sim) inUserOrder(rows []int32, key func(l int32) time.Time) func(i int) int32 {
	switch {
	case s.cfg.UserOrder == OrderNewestFirst:
		return func(i int) int32 { return rows[len(rows)-1-i] }
	case s.cfg.UserOrder == OrderUnstable && key != nil:
		shuffled := s.shuffleTies(rows, key)
		return func(i int) int32 { return shuffled[i] }
	}
	return func(i int) int32 { return rows[i] }
}

// shuffleTies returns rows with each run of tying keys (within one TieSpan) in a fresh
// random order, as one request to an unordered query sees them.
func (s *Sim) shuffleTies(rows []int32, key func(l int32) time.Time) []int32 {
	out := slices.Clone(rows)
	s.diceMu.Lock()
	defer s.diceMu.Unlock()
	for lo := 0; lo < len(out); {
		span := key(out[lo]).Truncate(s.cfg.TieSpan)
		hi := lo + 1
		for hi < len(out) && key(out[hi]).Truncate(s.cfg.TieSpan).Equal(span) {
			hi++
		}
		run := out[lo:hi]
		s.dice.Shuffle(len(run), func(i, j int) { run[i], run[j] = run[j], run[i] })
		lo = hi
	}
	return out
}

// parseBool reads a boolean filter as django-filter does; anything else means no filter.
func parseBool(v string) (value, ok bool) {
	switch v {
	case "true", "True", "1":
		return true, true
	case "false", "False", "0":
		return false, true
	}
	return false, false
}
