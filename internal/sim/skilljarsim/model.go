package skilljarsim

import (
	"slices"
	"time"
)

// Org is the simulated organisation: everything the API serves. Slices are in creation order
// and the API's list orders derive from the data alone, so a copy answers the same questions
// (LearnersIn, EnrollmentsOf...) in the same order as the running simulator.
type Org struct {
	Domains          []Domain
	Learners         []Learner
	Courses          []Course
	PublishedCourses []PublishedCourse
	Progress         []Progress

	idx *index
}

// Domain is one Skilljar domain (a hostname); Name is the path key.
type Domain struct {
	ID           string
	Name         string
	CatalogTitle string
	Access       string // PUBLIC, PRIVATE or PRIVATE_CODE
	SignupFields []SignupField
}

// SignupField is a domain's signup question.
type SignupField struct {
	ID    string
	Label string
}

// SignupValue is a learner's answer to one signup field of a domain.
type SignupValue struct {
	FieldID string
	Label   string
	Value   string
}

// Learner is an org-wide user.
type Learner struct {
	ID          string
	Email       string
	FirstName   string
	LastName    string
	SignedUpAt  time.Time
	InactiveAt  *time.Time
	Memberships []Membership
}

// Membership is a learner's registration on one domain (a DomainUser row).
type Membership struct {
	Domain       string
	Active       bool
	EnrolledAt   time.Time // when the learner joined the domain
	ExpiresAt    *time.Time
	SignupFields []SignupValue
}

// Course is an org-wide course with its lessons.
type Course struct {
	ID               string
	Title            string
	ShortDescription string
	Labels           []string
	CreatedAt        time.Time
	ModifiedAt       time.Time
	Credits          string // credits a completion earns, "" when the course grants none
	CreditUnitPlural string
	Lessons          []Lesson
}

// LessonCount is the course's lesson_count.
func (c Course) LessonCount() int { return len(c.Lessons) }

// RequiredLessonCount is the course's required_lesson_count: lessons not marked optional.
func (c Course) RequiredLessonCount() int {
	n := 0
	for _, l := range c.Lessons {
		if !l.Optional {
			n++
		}
	}
	return n
}

// Lesson is one lesson of a course.
type Lesson struct {
	ID          string
	Title       string
	Type        string // ASSET, HTML, WEB_PACKAGE, QUIZ, VILT, MODULAR or SECTION
	Order       int
	Optional    bool
	TimeSeconds int
}

// PublishedCourse is a course published to one domain.
type PublishedCourse struct {
	ID                          string
	CourseID                    string
	Domain                      string
	Slug                        string
	CourseURL                   string
	Hidden                      bool
	RegistrationRequired        bool
	AllowSelfServiceReenroll    bool
	UniqueProgressPerEnrollment bool
}

// Progress is a learner's latest enrollment in one published course with its course progress:
// one element of GET /v1/users/{id}/published-courses.
type Progress struct {
	CourseProgressID             string
	UserID                       string
	PublishedCourseID            string
	CourseID                     string
	Domain                       string
	EnrollmentID                 string
	EnrolledAt                   time.Time
	ExpiresAt                    *time.Time
	Active                       bool
	CompletedAt                  *time.Time
	SuccessStatus                string // "PASSED", "FAILED" or "" (null on the wire)
	Score                        *float64
	MaxScore                     *float64
	CreditsEarned                string
	LatestActivity               time.Time
	CompletedLessonCount         int
	CompletedRequiredLessonCount int
	// History holds the learner's earlier enrollments in this published course, oldest
	// first. With UniqueProgressPerEnrollment each has its own CourseProgressID; otherwise
	// they share this row's.
	History []Enrollment
}

// Enrollment is one enrollment of a learner in a published course.
type Enrollment struct {
	EnrollmentID     string
	CourseProgressID string
	EnrolledAt       time.Time
	ExpiresAt        *time.Time
	Active           bool
}

// Current is the row's latest enrollment.
func (p Progress) Current() Enrollment {
	return Enrollment{
		EnrollmentID:     p.EnrollmentID,
		CourseProgressID: p.CourseProgressID,
		EnrolledAt:       p.EnrolledAt,
		ExpiresAt:        p.ExpiresAt,
		Active:           p.Active,
	}
}

// AllEnrollments is History followed by the current enrollment: the all_enrollments array.
func (p Progress) AllEnrollments() []Enrollment {
	return append(slices.Clip(p.History), p.Current())
}

// Completed reports whether the course progress has a completion date.
func (p Progress) Completed() bool { return p.CompletedAt != nil }

// Overview is what GET /v1/users reports about a learner beyond the learner itself.
type Overview struct {
	RegistrationCount int // published courses enrolled in
	CompletionCount   int // of those, completed
	LatestActivity    time.Time
}

// Learner returns the learner with that id.
func (o Org) Learner(id string) (Learner, bool) {
	i, ok := o.index().learnerAt[id]
	if !ok {
		return Learner{}, false
	}
	return o.Learners[i], true
}

// LearnersIn returns the members of a domain in the order the domain's user list serves them
// with UserOrder "created".
func (o Org) LearnersIn(domain string) []Learner {
	x := o.index()
	d, ok := x.domainAt[domain]
	if !ok {
		return nil
	}
	out := make([]Learner, len(x.members[d]))
	for i, l := range x.members[d] {
		out[i] = o.Learners[l]
	}
	return out
}

// ProgressOf returns a learner's progress rows across all domains.
func (o Org) ProgressOf(userID string) []Progress {
	x := o.index()
	l, ok := x.learnerAt[userID]
	if !ok {
		return nil
	}
	out := make([]Progress, len(x.progressOf[l]))
	for i, p := range x.progressOf[l] {
		out[i] = o.Progress[p]
	}
	return out
}

// PublishedCoursesIn returns the courses published to a domain.
func (o Org) PublishedCoursesIn(domain string) []PublishedCourse {
	x := o.index()
	d, ok := x.domainAt[domain]
	if !ok {
		return nil
	}
	out := make([]PublishedCourse, len(x.pcsIn[d]))
	for i, p := range x.pcsIn[d] {
		out[i] = o.PublishedCourses[p]
	}
	return out
}

// EnrollmentsOf returns every enrollment (re-enrollments included) in a published course, in
// the order its enrollments list serves them.
func (o Org) EnrollmentsOf(publishedCourseID string) []Enrollment {
	x := o.index()
	pc, ok := x.pcAt[publishedCourseID]
	if !ok {
		return nil
	}
	out := make([]Enrollment, len(x.enrollmentsOf[pc]))
	for i, ref := range x.enrollmentsOf[pc] {
		out[i] = o.enrollment(ref)
	}
	return out
}

// Overview returns the learner's registration and completion counts and latest activity.
func (o Org) Overview(userID string) (Overview, bool) {
	x := o.index()
	l, ok := x.learnerAt[userID]
	if !ok {
		return Overview{}, false
	}
	return o.overview(x, l), true
}

func (o Org) overview(x *index, l int32) Overview {
	// latest_activity is typed non-nullable in the spec; for a learner who never opened a
	// course the sign-up time stands in (UNCONFIRMED: the live API may send null).
	ov := Overview{LatestActivity: o.Learners[l].SignedUpAt}
	for _, p := range x.progressOf[l] {
		row := &o.Progress[p]
		ov.RegistrationCount++
		if row.Completed() {
			ov.CompletionCount++
		}
		if row.LatestActivity.After(ov.LatestActivity) {
			ov.LatestActivity = row.LatestActivity
		}
	}
	return ov
}

func (o Org) enrollment(ref enrollmentRef) Enrollment {
	p := &o.Progress[ref.progress]
	if int(ref.seq) == len(p.History) {
		return p.Current()
	}
	return p.History[ref.seq]
}

func (o *Org) membership(l int32, domain string) *Membership {
	ms := o.Learners[l].Memberships
	for i := range ms {
		if ms[i].Domain == domain {
			return &ms[i]
		}
	}
	return nil
}

// index returns the lookup tables, building them for an Org assembled by hand.
func (o Org) index() *index {
	if o.idx == nil {
		return buildIndex(&o)
	}
	return o.idx
}

// clone deep-copies the org so callers can keep it while the simulator changes.
func (o *Org) clone() Org {
	c := Org{
		Domains:          slices.Clone(o.Domains),
		Learners:         slices.Clone(o.Learners),
		Courses:          slices.Clone(o.Courses),
		PublishedCourses: slices.Clone(o.PublishedCourses),
		Progress:         slices.Clone(o.Progress),
	}
	for i := range c.Domains {
		c.Domains[i].SignupFields = slices.Clone(c.Domains[i].SignupFields)
	}
	for i := range c.Learners {
		c.Learners[i] = cloneLearner(c.Learners[i])
	}
	for i := range c.Courses {
		c.Courses[i].Labels = slices.Clone(c.Courses[i].Labels)
		c.Courses[i].Lessons = slices.Clone(c.Courses[i].Lessons)
	}
	for i := range c.Progress {
		c.Progress[i] = cloneProgress(c.Progress[i])
	}
	c.idx = buildIndex(&c)
	return c
}

func cloneLearner(l Learner) Learner {
	l.InactiveAt = clonePtr(l.InactiveAt)
	l.Memberships = slices.Clone(l.Memberships)
	for j := range l.Memberships {
		m := &l.Memberships[j]
		m.ExpiresAt = clonePtr(m.ExpiresAt)
		m.SignupFields = slices.Clone(m.SignupFields)
	}
	return l
}

func cloneProgress(p Progress) Progress {
	p.ExpiresAt = clonePtr(p.ExpiresAt)
	p.CompletedAt = clonePtr(p.CompletedAt)
	p.Score = clonePtr(p.Score)
	p.MaxScore = clonePtr(p.MaxScore)
	p.History = slices.Clone(p.History)
	for j := range p.History {
		p.History[j].ExpiresAt = clonePtr(p.History[j].ExpiresAt)
	}
	return p
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
