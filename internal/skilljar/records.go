package skilljar

import "time"

// Records as the Skilljar v1 API returns them (reference/skilljar.md §3). Only the fields the
// backfill maps or needs for paging and change detection are decoded; IDs are opaque strings.

// Domain is one Skilljar domain (GET /v1/domains). Name is the hostname used in paths.
type Domain struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	CatalogTitle string `json:"catalog_title"`
	Access       string `json:"access"`
}

// UserRef is the nested user object that DomainUser, UserOverview and Enrollment carry.
type UserRef struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	FullName  string `json:"full_name,omitempty"`
}

// SignupFieldValue is one answer to a domain's signup field.
type SignupFieldValue struct {
	SignupField struct {
		ID    string `json:"id"`
		Label string `json:"label"`
	} `json:"signup_field"`
	Value string `json:"value"`
}

// DomainUser is a learner's membership in one domain (GET /v1/domains/{domain}/users).
type DomainUser struct {
	User           UserRef            `json:"user"`
	Active         bool               `json:"active"`
	MarketingOptIn *bool              `json:"marketing_optin"`
	EnrolledAt     *time.Time         `json:"enrolled_at"`
	ExpiresAt      *time.Time         `json:"expires_at"`
	SignupFields   []SignupFieldValue `json:"signup_fields,omitempty"`
}

// UserOverview is an org-wide learner row (GET /v1/users), used to detect changed learners.
type UserOverview struct {
	User              UserRef    `json:"user"`
	RegistrationCount int        `json:"registration_count"`
	CompletionCount   int        `json:"completion_count"`
	SignedUpAt        *time.Time `json:"signed_up_at"`
	LatestActivity    *time.Time `json:"latest_activity"`
	InactiveAt        *time.Time `json:"inactive_at"`
}

// Course is an org-wide course (GET /v1/courses).
type Course struct {
	ID               string     `json:"id"`
	Title            string     `json:"title"`
	ShortDescription string     `json:"short_description"`
	Labels           []string   `json:"labels"`
	CreatedAt        *time.Time `json:"created_at"`
	ModifiedAt       *time.Time `json:"modified_at"`
}

// CourseSummary is the nested course object on published courses and progress rows.
type CourseSummary struct {
	ID                  string `json:"id"`
	Title               string `json:"title"`
	LessonCount         int    `json:"lesson_count"`
	RequiredLessonCount int    `json:"required_lesson_count"`
}

// PublishedCourse is a course published to one domain
// (GET /v1/domains/{domain}/published-courses). The API does not echo the domain on the
// record, so the client fills Domain from the request.
type PublishedCourse struct {
	ID                          string        `json:"id"`
	Course                      CourseSummary `json:"course"`
	Slug                        string        `json:"slug"`
	CourseURL                   string        `json:"course_url"`
	Hidden                      bool          `json:"hidden"`
	RegistrationRequired        bool          `json:"registration_required"`
	UniqueProgressPerEnrollment bool          `json:"unique_progress_per_enrollment"`
	Domain                      string        `json:"-"`
}

// CourseProgress is the progress block of one enrollment.
type CourseProgress struct {
	CourseProgressID             string     `json:"course_progress_id"`
	CompletedLessonCount         int        `json:"completed_lesson_count"`
	CompletedRequiredLessonCount int        `json:"completed_required_lesson_count"`
	CompletedAt                  *time.Time `json:"completed_at"`
	LatestActivity               *time.Time `json:"latest_activity"`
	Score                        *float64   `json:"score"`
	MaxScore                     *float64   `json:"max_score"`
	CreditsEarned                string     `json:"credits_earned"`
	CreditUnitPlural             string     `json:"credit_unit_plural"`
	SuccessStatus                *string    `json:"success_status"`
}

// EnrollmentRef is one entry of a progress row's enrollment history.
type EnrollmentRef struct {
	CourseProgressID string     `json:"course_progress_id"`
	Active           bool       `json:"active"`
	ExpiresAt        *time.Time `json:"expires_at"`
	EnrollmentID     string     `json:"enrollment_id"`
}

// Certificate is issued on completion of some courses.
type Certificate struct {
	Code        string     `json:"code"`
	ValidateURL string     `json:"validate_url"`
	IssuedAt    *time.Time `json:"issued_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// UserCourseProgress is one element of the bare array that
// GET /v1/users/{id}/published-courses returns: the learner's latest enrollment in one
// published course, across all domains, with its progress and enrollment history.
type UserCourseProgress struct {
	PublishedCourseID string          `json:"published_course_id"`
	DomainName        string          `json:"domain_name"`
	EnrolledAt        *time.Time      `json:"enrolled_at"`
	EnrollmentID      string          `json:"enrollment_id"`
	Course            CourseSummary   `json:"course"`
	CourseProgress    CourseProgress  `json:"course_progress"`
	Certificate       *Certificate    `json:"certificate"`
	AllEnrollments    []EnrollmentRef `json:"all_enrollments"`
}
