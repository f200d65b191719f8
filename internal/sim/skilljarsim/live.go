package skilljarsim

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Live changes. Every change is stamped with a strictly increasing clock, so a new learner,
// membership or enrollment sorts after everything already listed: with UserOrder "created"
// it appears at the end of its lists and never shifts a page a crawl has passed.

// AddLearner signs up a new learner now, a member of the given domains (the first domain
// when none is given). It panics on an unknown domain.
func (s *Sim) AddLearner(domains ...string) Learner {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(domains) == 0 {
		domains = []string{s.org.Domains[0].Name}
	}
	var unique []string
	for _, d := range domains {
		if _, ok := s.org.idx.domainAt[d]; !ok {
			panic(fmt.Sprintf("skilljarsim: AddLearner: unknown domain %q", d))
		}
		if !slices.Contains(unique, d) {
			unique = append(unique, d)
		}
	}
	return cloneLearner(s.org.Learners[s.addLearner(unique)])
}

// Enroll enrolls a learner in a published course now, joining its domain if needed. If the
// learner is already enrolled this is a re-enrollment: the current enrollment moves to
// History and, with unique_progress_per_enrollment, a fresh course progress starts. It
// panics on an unknown learner or published course.
func (s *Sim) Enroll(userID, publishedCourseID string) Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.org.idx.learnerAt[userID]
	if !ok {
		panic(fmt.Sprintf("skilljarsim: Enroll: unknown learner %q", userID))
	}
	pc, ok := s.org.idx.pcAt[publishedCourseID]
	if !ok {
		panic(fmt.Sprintf("skilljarsim: Enroll: unknown published course %q", publishedCourseID))
	}
	return cloneProgress(s.org.Progress[s.enroll(l, pc)])
}

// Complete completes a course progress now, PASSED or FAILED, with a score out of 100. It
// panics unless courseProgressID is the current progress of some row.
func (s *Sim) Complete(courseProgressID string, passed bool, score float64) Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.org.idx.progressAt[courseProgressID]
	if !ok {
		panic(fmt.Sprintf("skilljarsim: Complete: unknown course progress %q", courseProgressID))
	}
	s.complete(p, passed, score)
	return cloneProgress(s.org.Progress[p])
}

// ChangeLearners changes that fraction of the learners, chosen at random: each gets a new
// enrollment or a completion, which moves its latest_activity and its registration or
// completion count on /v1/users. It returns their ids.
func (s *Sim) ChangeLearners(fraction float64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.org.Learners)
	k := min(n, max(0, int(math.Round(fraction*float64(n)))))
	ids := make([]string, 0, k)
	for _, l := range s.liveDice.Perm(n)[:k] {
		s.changeLearner(int32(l), s.liveDice.IntN(2) == 0)
		ids = append(ids, s.org.Learners[l].ID)
	}
	return ids
}

// StartLive makes changes at ratePerSecond until stop is called or the simulator closes:
// about 20% new learners, 40% enrollments and 40% completions. stop waits for the change in
// flight to finish.
func (s *Sim) StartLive(ratePerSecond float64) (stop func()) {
	if ratePerSecond <= 0 {
		return func() {}
	}
	return s.every(ratePerSecond, s.liveStep, func() {})
}

func (s *Sim) liveStep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch u := s.liveDice.IntN(10); {
	case u < 2 || len(s.org.Learners) == 0:
		s.addLearner(s.liveGen().pickDomains())
	default:
		s.changeLearner(int32(s.liveDice.IntN(len(s.org.Learners))), u >= 6)
	}
}

// now is the live clock: wall time at the API's microsecond precision, strictly after every
// timestamp handed out before and after the generated history.
func (s *Sim) now() time.Time {
	t := time.Now().UTC().Truncate(time.Microsecond)
	if !t.After(s.clock) {
		t = s.clock.Add(time.Microsecond)
	}
	s.clock = t
	return t
}

func (s *Sim) liveGen() *generator {
	return &generator{r: s.liveDice, ids: &s.ids, org: &s.org}
}

func (s *Sim) addLearner(domains []string) int32 {
	l := int32(len(s.org.Learners))
	s.org.Learners = append(s.org.Learners, s.liveGen().learner(s.now(), domains...))
	s.org.idx.learnerAt[s.org.Learners[l].ID] = l
	s.org.idx.progressOf = append(s.org.idx.progressOf, nil)
	for _, d := range domains {
		i := s.org.idx.domainAt[d]
		s.org.idx.members[i] = append(s.org.idx.members[i], l)
	}
	s.emit(EventDomainEnrollment, &s.org.Learners[l], nil, domains[0])
	return l
}

// enroll enrolls learner l in published course pc, or re-enrolls, and returns the row.
func (s *Sim) enroll(l, pc int32) int32 {
	at := s.now()
	g := s.liveGen()
	domain := s.org.PublishedCourses[pc].Domain
	if s.org.membership(l, domain) == nil {
		m := g.membership(domain, at)
		m.Active, m.ExpiresAt = true, nil // joined by enrolling, so certainly let in
		lr := &s.org.Learners[l]
		lr.Memberships = append(lr.Memberships, m)
		d := s.org.idx.domainAt[domain]
		s.org.idx.members[d] = append(s.org.idx.members[d], l)
	}
	for _, p := range s.org.idx.progressOf[l] {
		row := &s.org.Progress[p]
		if row.PublishedCourseID != s.org.PublishedCourses[pc].ID {
			continue
		}
		old := row.CourseProgressID
		g.reenroll(row, at)
		if row.CourseProgressID != old {
			delete(s.org.idx.progressAt, old)
			s.org.idx.progressAt[row.CourseProgressID] = p
		}
		s.org.idx.enrollmentsOf[pc] = append(s.org.idx.enrollmentsOf[pc], enrollmentRef{p, int32(len(row.History))})
		s.emit(EventCourseEnrollment, &s.org.Learners[l], row, domain)
		return p
	}
	row := g.enroll(l, pc, at)
	row.Active, row.ExpiresAt = true, nil
	p := int32(len(s.org.Progress))
	s.org.Progress = append(s.org.Progress, row)
	s.org.idx.progressAt[row.CourseProgressID] = p
	s.org.idx.progressOf[l] = append(s.org.idx.progressOf[l], p)
	s.org.idx.enrollmentsOf[pc] = append(s.org.idx.enrollmentsOf[pc], enrollmentRef{p, 0})
	s.emit(EventCourseEnrollment, &s.org.Learners[l], &s.org.Progress[p], domain)
	return p
}

func (s *Sim) complete(p int32, passed bool, score float64) {
	row := &s.org.Progress[p]
	status := "FAILED"
	if passed {
		status = "PASSED"
	}
	markCompleted(row, s.course(row.CourseID), status, s.now())
	maxScore := 100.0
	row.Score, row.MaxScore = &score, &maxScore
	s.emit(EventCourseCompletion, &s.org.Learners[s.org.idx.learnerAt[row.UserID]], row, row.Domain)
}

// changeLearner completes one of the learner's open rows (when asked to and one exists) or
// enrolls them in a course of their domains they have not taken, re-enrolling when they
// have taken them all.
func (s *Sim) changeLearner(l int32, preferCompletion bool) {
	rows := s.org.idx.progressOf[l]
	if preferCompletion {
		for _, p := range rows {
			if !s.org.Progress[p].Completed() {
				s.complete(p, s.liveDice.IntN(5) != 0, float64(50+s.liveDice.IntN(51)))
				return
			}
		}
	}
	var fresh []int32
	for _, m := range s.org.Learners[l].Memberships {
		for _, pc := range s.org.idx.pcsIn[s.org.idx.domainAt[m.Domain]] {
			if !slices.ContainsFunc(rows, func(p int32) bool {
				return s.org.Progress[p].PublishedCourseID == s.org.PublishedCourses[pc].ID
			}) {
				fresh = append(fresh, pc)
			}
		}
	}
	switch {
	case len(fresh) > 0:
		s.enroll(l, fresh[s.liveDice.IntN(len(fresh))])
	case len(rows) > 0:
		s.enroll(l, s.org.idx.pcAt[s.org.Progress[rows[s.liveDice.IntN(len(rows))]].PublishedCourseID])
	}
}
