package mapping

import (
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Object names, in the order parents must be written before children.
const (
	Course          = "course"
	PublishedCourse = "published_course"
	Student         = "student"
	CourseProgress  = "course_progress"
)

// Order is the dependency order of the objects: every parent precedes its children.
var Order = []string{Course, PublishedCourse, Student, CourseProgress}

// Source is one Skilljar record flattened to the keys a mapping's "source" names. A key that
// is absent means "unknown here" (the field is left unchanged in Salesforce); a key with a nil
// value means "empty in Skilljar" (the field is cleared).
type Source map[string]any

// SourceKeys lists, per object, the keys its source records carry.
var SourceKeys = map[string]map[string]bool{
	Course: set("id", "title", "short_description", "labels", "created_at", "modified_at"),
	PublishedCourse: set("id", "course.id", "course.title", "slug", "course_url", "domain",
		"hidden", "registration_required", "unique_progress_per_enrollment"),
	Student: set("id", "email", "first_name", "last_name", "full_name", "domain", "active",
		"domain_enrolled_at", "domain_expires_at"),
	CourseProgress: set("id", "user_id", "published_course_id", "domain", "course.id", "course.title",
		"enrollment_id", "enrolled_at", "completed_at", "success_status", "score", "max_score",
		"latest_activity", "completed_lesson_count", "completed_required_lesson_count",
		"credits_earned", "active", "expires_at", "certificate_code"),
}

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

func stringOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func floatOrNil(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// CourseSource flattens a course.
func CourseSource(c skilljar.Course) Source {
	return Source{
		"id": c.ID, "title": c.Title, "short_description": c.ShortDescription,
		"labels": strings.Join(c.Labels, ";"), "created_at": timeOrNil(c.CreatedAt),
		"modified_at": timeOrNil(c.ModifiedAt),
	}
}

// PublishedCourseSource flattens a published course.
func PublishedCourseSource(p skilljar.PublishedCourse) Source {
	return Source{
		"id": p.ID, "course.id": p.Course.ID, "course.title": p.Course.Title, "slug": p.Slug,
		"course_url": p.CourseURL, "domain": p.Domain, "hidden": p.Hidden,
		"registration_required":          p.RegistrationRequired,
		"unique_progress_per_enrollment": p.UniqueProgressPerEnrollment,
	}
}

// StudentSource flattens a learner's membership of the domain it was read from.
func StudentSource(u skilljar.DomainUser, domain string) Source {
	full := u.User.FullName
	if full == "" {
		full = strings.TrimSpace(u.User.FirstName + " " + u.User.LastName)
	}
	return Source{
		"id": u.User.ID, "email": u.User.Email, "first_name": u.User.FirstName,
		"last_name": u.User.LastName, "full_name": full, "domain": domain, "active": u.Active,
		"domain_enrolled_at": timeOrNil(u.EnrolledAt), "domain_expires_at": timeOrNil(u.ExpiresAt),
	}
}

// StudentSourceFromUser flattens the org-wide view of a learner (GET /v1/users), which
// knows nothing of domains: domain fields are left out, so an upsert leaves them as they are.
func StudentSourceFromUser(u skilljar.UserRef) Source {
	return Source{
		"id": u.ID, "email": u.Email, "first_name": u.FirstName, "last_name": u.LastName,
		"full_name": strings.TrimSpace(u.FirstName + " " + u.LastName),
	}
}

// ProgressSources flattens one element of a learner's published-courses array into the
// course progress records it holds: the current enrollment's progress, in full, and one
// record per earlier enrollment that had its own progress (unique_progress_per_enrollment),
// carrying only what the API still says about it, so an upsert never blanks what Salesforce
// recorded when that enrollment was live.
func ProgressSources(userID string, p skilljar.UserCourseProgress) []Source {
	cp := p.CourseProgress
	current := Source{
		"id": cp.CourseProgressID, "user_id": userID, "published_course_id": p.PublishedCourseID,
		"domain": p.DomainName, "course.id": p.Course.ID, "course.title": p.Course.Title,
		"enrollment_id": p.EnrollmentID, "enrolled_at": timeOrNil(p.EnrolledAt),
		"completed_at": timeOrNil(cp.CompletedAt), "success_status": stringOrNil(cp.SuccessStatus),
		"score": floatOrNil(cp.Score), "max_score": floatOrNil(cp.MaxScore),
		"latest_activity":                 timeOrNil(cp.LatestActivity),
		"completed_lesson_count":          float64(cp.CompletedLessonCount),
		"completed_required_lesson_count": float64(cp.CompletedRequiredLessonCount),
		"credits_earned":                  cp.CreditsEarned, "certificate_code": nil,
	}
	if p.Certificate != nil {
		current["certificate_code"] = p.Certificate.Code
	}
	out := []Source{current}
	for _, e := range p.AllEnrollments {
		if e.CourseProgressID == cp.CourseProgressID || e.CourseProgressID == "" {
			// Without unique progress per enrollment, earlier enrollments share the current
			// progress record; only the current enrollment says whether it is active.
			if e.EnrollmentID == p.EnrollmentID {
				current["active"] = e.Active
				current["expires_at"] = timeOrNil(e.ExpiresAt)
			}
			continue
		}
		out = append(out, Source{
			"id": e.CourseProgressID, "user_id": userID, "published_course_id": p.PublishedCourseID,
			"domain": p.DomainName, "course.id": p.Course.ID, "course.title": p.Course.Title,
			"enrollment_id": e.EnrollmentID, "active": e.Active, "expires_at": timeOrNil(e.ExpiresAt),
		})
	}
	return out
}
