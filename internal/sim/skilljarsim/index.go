package skilljarsim

import (
	"cmp"
	"slices"
)

// index holds the lookups and list orders the API needs. buildIndex derives it from the data
// alone; live changes extend it in place and, because their timestamps only move forward,
// keep it equal to what buildIndex would produce.
type index struct {
	domainAt   map[string]int
	learnerAt  map[string]int32
	courseAt   map[string]int
	pcAt       map[string]int32
	progressAt map[string]int32 // current course_progress_id → row

	members       [][]int32         // per domain: learners by membership enrolled_at
	pcsIn         [][]int32         // per domain: published courses in creation order
	progressOf    [][]int32         // per learner: progress rows in creation order
	enrollmentsOf [][]enrollmentRef // per published course: enrollments by enrolled_at
}

// enrollmentRef names one enrollment: seq indexes the row's History, and seq ==
// len(History) is the current enrollment. Refs stay valid when a re-enrollment moves the
// current enrollment into History.
type enrollmentRef struct {
	progress int32
	seq      int32
}

func buildIndex(o *Org) *index {
	x := &index{
		domainAt:      make(map[string]int, len(o.Domains)),
		learnerAt:     make(map[string]int32, len(o.Learners)),
		courseAt:      make(map[string]int, len(o.Courses)),
		pcAt:          make(map[string]int32, len(o.PublishedCourses)),
		progressAt:    make(map[string]int32, len(o.Progress)),
		members:       make([][]int32, len(o.Domains)),
		pcsIn:         make([][]int32, len(o.Domains)),
		progressOf:    make([][]int32, len(o.Learners)),
		enrollmentsOf: make([][]enrollmentRef, len(o.PublishedCourses)),
	}
	for i, d := range o.Domains {
		x.domainAt[d.Name] = i
	}
	for i, l := range o.Learners {
		x.learnerAt[l.ID] = int32(i)
		for _, m := range l.Memberships {
			d := x.domainAt[m.Domain]
			x.members[d] = append(x.members[d], int32(i))
		}
	}
	for d, ls := range x.members {
		name := o.Domains[d].Name
		slices.SortFunc(ls, func(a, b int32) int {
			return cmp.Or(o.membership(a, name).EnrolledAt.Compare(o.membership(b, name).EnrolledAt), cmp.Compare(a, b))
		})
	}
	for i, c := range o.Courses {
		x.courseAt[c.ID] = i
	}
	for i, pc := range o.PublishedCourses {
		x.pcAt[pc.ID] = int32(i)
		d := x.domainAt[pc.Domain]
		x.pcsIn[d] = append(x.pcsIn[d], int32(i))
	}
	for i := range o.Progress {
		p := &o.Progress[i]
		x.progressAt[p.CourseProgressID] = int32(i)
		l := x.learnerAt[p.UserID]
		x.progressOf[l] = append(x.progressOf[l], int32(i))
		pc := x.pcAt[p.PublishedCourseID]
		for seq := range len(p.History) + 1 {
			x.enrollmentsOf[pc] = append(x.enrollmentsOf[pc], enrollmentRef{int32(i), int32(seq)})
		}
	}
	for _, refs := range x.enrollmentsOf {
		slices.SortFunc(refs, func(a, b enrollmentRef) int {
			return cmp.Or(o.enrollment(a).EnrolledAt.Compare(o.enrollment(b).EnrolledAt),
				cmp.Compare(a.progress, b.progress), cmp.Compare(a.seq, b.seq))
		})
	}
	return x
}
