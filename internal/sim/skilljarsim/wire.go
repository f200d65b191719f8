package skilljarsim

import (
	"fmt"
	"strings"
	"time"
)

// JSON shapes as the API sends them (reference/skilljar.md §3). Fields the org does not model
// are sent with their neutral values so clients see the full record.

// stamp is a timestamp in Django REST framework's style: ISO-8601 UTC with a Z, with six
// fractional digits only when there are microseconds ("2022-03-14T17:02:11.512000Z").
type stamp time.Time

// MarshalText rather than MarshalJSON: encoding/json quotes text directly instead of
// re-scanning the output, and every row of a page carries several stamps.
func (t stamp) MarshalText() ([]byte, error) {
	return []byte(formatStamp(time.Time(t))), nil
}

func formatStamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000000Z")
}

func stampPtr(t *time.Time) *stamp {
	if t == nil {
		return nil
	}
	return (*stamp)(t)
}

// nullString sends "" as null, as for success_status.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type wireDomain struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	CatalogTitle          string `json:"catalog_title"`
	Private               bool   `json:"private"`
	Access                string `json:"access"`
	AccessCodeMessageHTML string `json:"access_code_message_html"`
	MarketingMessage      string `json:"marketing_message"`
}

func toWireDomain(d Domain) wireDomain {
	return wireDomain{ID: d.ID, Name: d.Name, CatalogTitle: d.CatalogTitle, Private: d.Access != "PUBLIC", Access: d.Access}
}

type wireUser struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	FullName  string `json:"full_name,omitempty"`
}

func toWireUser(l *Learner, withFullName bool) wireUser {
	u := wireUser{ID: l.ID, Email: l.Email, FirstName: l.FirstName, LastName: l.LastName}
	if withFullName {
		u.FullName = strings.TrimSpace(l.FirstName + " " + l.LastName)
	}
	return u
}

type wireSignupFieldRef struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

type wireSignupValue struct {
	SignupField wireSignupFieldRef `json:"signup_field"`
	Value       string             `json:"value"`
}

type wireDomainUser struct {
	User           wireUser           `json:"user"`
	Active         bool               `json:"active"`
	MarketingOptIn *bool              `json:"marketing_optin"`
	EnrolledAt     stamp              `json:"enrolled_at"`
	ExpiresAt      *stamp             `json:"expires_at"`
	AccessCode     *struct{}          `json:"access_code"`
	SignupFields   *[]wireSignupValue `json:"signup_fields,omitempty"`
}

func toWireDomainUser(l *Learner, m *Membership, withSignup bool) wireDomainUser {
	u := wireDomainUser{
		User:       toWireUser(l, true),
		Active:     m.Active,
		EnrolledAt: stamp(m.EnrolledAt),
		ExpiresAt:  stampPtr(m.ExpiresAt),
	}
	if withSignup {
		vals := make([]wireSignupValue, len(m.SignupFields))
		for i, v := range m.SignupFields {
			vals[i] = wireSignupValue{wireSignupFieldRef{v.FieldID, v.Label}, v.Value}
		}
		u.SignupFields = &vals
	}
	return u
}

type wireUserOverview struct {
	User              wireUser `json:"user"`
	RegistrationCount int      `json:"registration_count"`
	CompletionCount   int      `json:"completion_count"`
	SignedUpAt        stamp    `json:"signed_up_at"`
	LatestActivity    stamp    `json:"latest_activity"`
	InactiveAt        *stamp   `json:"inactive_at"`
}

func toWireUserOverview(l *Learner, ov Overview) wireUserOverview {
	return wireUserOverview{
		User:              toWireUser(l, false),
		RegistrationCount: ov.RegistrationCount,
		CompletionCount:   ov.CompletionCount,
		SignedUpAt:        stamp(l.SignedUpAt),
		LatestActivity:    stamp(ov.LatestActivity),
		InactiveAt:        stampPtr(l.InactiveAt),
	}
}

type wireCourse struct {
	ID                          string   `json:"id"`
	Title                       string   `json:"title"`
	ShortDescription            string   `json:"short_description"`
	LongDescriptionHTML         string   `json:"long_description_html"`
	EnforceSequentialNavigation bool     `json:"enforce_sequential_navigation"`
	Labels                      []string `json:"labels"`
	DraftOriginID               *string  `json:"draft_origin_id"`
	PromoImageURL               *string  `json:"promo_image_url"`
	CourseAndLessonTimeFormat   string   `json:"course_and_lesson_time_format"`
	CourseTime                  string   `json:"course_time"`
	CreatedAt                   stamp    `json:"created_at"`
	ModifiedAt                  stamp    `json:"modified_at"`
	AverageRating               *float64 `json:"average_rating"`
}

func toWireCourse(c *Course) wireCourse {
	secs := 0
	for _, l := range c.Lessons {
		secs += l.TimeSeconds
	}
	labels := c.Labels
	if labels == nil {
		labels = []string{}
	}
	return wireCourse{
		ID:                        c.ID,
		Title:                     c.Title,
		ShortDescription:          c.ShortDescription,
		LongDescriptionHTML:       "<p>" + c.ShortDescription + "</p>",
		Labels:                    labels,
		CourseAndLessonTimeFormat: "HOURS_MINUTES",
		CourseTime:                fmt.Sprintf("%dh %dm", secs/3600, secs%3600/60),
		CreatedAt:                 stamp(c.CreatedAt),
		ModifiedAt:                stamp(c.ModifiedAt),
	}
}

type wireLesson struct {
	ID          string `json:"id"`
	CourseID    string `json:"course_id"`
	Title       string `json:"title"`
	Type        string `json:"type"`
	Order       int    `json:"order"`
	Optional    bool   `json:"optional"`
	TimeSeconds int    `json:"time_seconds"`
}

type wireCourseSummary struct {
	ID                  string `json:"id"`
	Title               string `json:"title"`
	LessonCount         int    `json:"lesson_count"`
	RequiredLessonCount int    `json:"required_lesson_count"`
}

func toWireCourseSummary(c *Course) wireCourseSummary {
	return wireCourseSummary{ID: c.ID, Title: c.Title, LessonCount: c.LessonCount(), RequiredLessonCount: c.RequiredLessonCount()}
}

type wirePublishedCourse struct {
	ID                           string            `json:"id"`
	Slug                         string            `json:"slug"`
	Course                       wireCourseSummary `json:"course"`
	CourseURL                    string            `json:"course_url"`
	Hidden                       bool              `json:"hidden"`
	StrictEnforceGroupVisibility bool              `json:"strict_enforce_group_visibility"`
	RegistrationRequired         bool              `json:"registration_required"`
	RegistrationStartsAt         *stamp            `json:"registration_starts_at"`
	RegistrationEndsAt           *stamp            `json:"registration_ends_at"`
	RestrictAccessStartEndDates  bool              `json:"restrict_access_start_end_dates"`
	AllowSelfServiceReenroll     bool              `json:"allow_self_service_reenroll"`
	UniqueProgressPerEnrollment  bool              `json:"unique_progress_per_enrollment"`
	RequireAllPrerequisites      bool              `json:"require_all_prerequisites"`
	Timezone                     *string           `json:"timezone"`
	Offer                        *struct{}         `json:"offer"`
}

func toWirePublishedCourse(pc *PublishedCourse, c *Course) wirePublishedCourse {
	return wirePublishedCourse{
		ID:                          pc.ID,
		Slug:                        pc.Slug,
		Course:                      toWireCourseSummary(c),
		CourseURL:                   pc.CourseURL,
		Hidden:                      pc.Hidden,
		RegistrationRequired:        pc.RegistrationRequired,
		AllowSelfServiceReenroll:    pc.AllowSelfServiceReenroll,
		UniqueProgressPerEnrollment: pc.UniqueProgressPerEnrollment,
	}
}

type wireEnrollment struct {
	ID         string    `json:"id"`
	User       wireUser  `json:"user"`
	EnrolledAt stamp     `json:"enrolled_at"`
	ExpiresAt  *stamp    `json:"expires_at"`
	Active     bool      `json:"active"`
	Purchase   *struct{} `json:"purchase"`
	Rating     *int      `json:"rating"`
	Feedback   *string   `json:"feedback"`
}

type wireCourseProgress struct {
	CourseProgressID             string   `json:"course_progress_id"`
	CompletedLessonCount         int      `json:"completed_lesson_count"`
	CompletedRequiredLessonCount int      `json:"completed_required_lesson_count"`
	CompletedAt                  *stamp   `json:"completed_at"`
	LatestActivity               stamp    `json:"latest_activity"`
	Score                        *float64 `json:"score"`
	MaxScore                     *float64 `json:"max_score"`
	CreditsEarned                string   `json:"credits_earned"`
	CreditUnitPlural             string   `json:"credit_unit_plural"`
	SuccessStatus                *string  `json:"success_status"`
}

type wireCertificate struct {
	Code        string `json:"code"`
	ValidateURL string `json:"validate_url"`
	IssuedAt    stamp  `json:"issued_at"`
	ExpiresAt   *stamp `json:"expires_at"`
}

type wireEnrollmentRef struct {
	CourseProgressID string `json:"course_progress_id"`
	Active           bool   `json:"active"`
	ExpiresAt        *stamp `json:"expires_at"`
	EnrollmentID     string `json:"enrollment_id"`
}

type wireUserCourseProgress struct {
	PublishedCourseID string              `json:"published_course_id"`
	DomainName        string              `json:"domain_name"`
	EnrolledAt        stamp               `json:"enrolled_at"`
	EnrollmentID      string              `json:"enrollment_id"`
	Course            wireCourseSummary   `json:"course"`
	CourseProgress    wireCourseProgress  `json:"course_progress"`
	Certificate       *wireCertificate    `json:"certificate"`
	AllEnrollments    []wireEnrollmentRef `json:"all_enrollments"`
}

// toWireUserCourseProgress renders a row. Certificates are not modelled separately: a
// PASSED completion carries one whose code derives from the course progress id.
func toWireUserCourseProgress(p *Progress, c *Course) wireUserCourseProgress {
	w := wireUserCourseProgress{
		PublishedCourseID: p.PublishedCourseID,
		DomainName:        p.Domain,
		EnrolledAt:        stamp(p.EnrolledAt),
		EnrollmentID:      p.EnrollmentID,
		Course:            toWireCourseSummary(c),
		CourseProgress: wireCourseProgress{
			CourseProgressID:             p.CourseProgressID,
			CompletedLessonCount:         p.CompletedLessonCount,
			CompletedRequiredLessonCount: p.CompletedRequiredLessonCount,
			CompletedAt:                  stampPtr(p.CompletedAt),
			LatestActivity:               stamp(p.LatestActivity),
			Score:                        p.Score,
			MaxScore:                     p.MaxScore,
			CreditsEarned:                p.CreditsEarned,
			CreditUnitPlural:             c.CreditUnitPlural,
			SuccessStatus:                nullString(p.SuccessStatus),
		},
	}
	if p.SuccessStatus == "PASSED" {
		code := strings.ToUpper(p.CourseProgressID[:4] + "-" + p.CourseProgressID[4:8])
		w.Certificate = &wireCertificate{
			Code:        code,
			ValidateURL: "https://" + p.Domain + "/certificates/" + code,
			IssuedAt:    stamp(*p.CompletedAt),
		}
	}
	for _, e := range p.AllEnrollments() {
		w.AllEnrollments = append(w.AllEnrollments, wireEnrollmentRef{
			CourseProgressID: e.CourseProgressID, Active: e.Active, ExpiresAt: stampPtr(e.ExpiresAt), EnrollmentID: e.EnrollmentID,
		})
	}
	return w
}
