package skilljarsim_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// The schemas below are written from Skilljar's published v1 OpenAPI document (api.skilljar.com
// /docs/schema.yml; public copy api-evangelist/skilljar openapi/_original/skilljar-openapi-
// original.yml), for every endpoint internal/skilljar calls. Names, types, formats, patterns,
// lengths and enums are the document's and binding; where reference/skilljar.md §12 records that
// the live API sends null for a field the document does not mark nullable, the field says
// loose, and null passes.

type kind int

const (
	kString kind = iota
	kEmail
	kURI
	kDateTime
	kInteger
	kNumber
	kBoolean
	kObject
	kArray
)

type prop struct {
	kind     kind
	nullable bool // the document's nullable: true
	loose    bool // null in practice though the document does not say so (§12)
	pattern  *regexp.Regexp
	maxLen   int
	enum     []string
	min, max *float64
	object   *schema
	items    *prop
}

type schema struct {
	name     string
	props    map[string]prop
	required []string
}

func num(v float64) *float64 { return &v }

func str(maxLen int) prop                  { return prop{kind: kString, maxLen: maxLen} }
func obj(s *schema) prop                   { return prop{kind: kObject, object: s} }
func arr(items prop) prop                  { return prop{kind: kArray, items: &items} }
func enum(values ...string) prop           { return prop{kind: kString, enum: values} }
func (p prop) null() prop                  { p.nullable = true; return p }
func (p prop) looseNull() prop             { p.loose = true; return p }
func (p prop) pat(re string) prop          { p.pattern = regexp.MustCompile(re); return p }
func (p prop) between(lo, hi float64) prop { p.min, p.max = num(lo), num(hi); return p }

var (
	dateTime = prop{kind: kDateTime}
	integer  = prop{kind: kInteger}
	boolean  = prop{kind: kBoolean}

	// Domain.
	docDomain = &schema{name: "Domain", props: map[string]prop{
		"id": str(0), "name": str(0), "catalog_title": str(0), "private": boolean,
		"access": enum("PUBLIC", "PRIVATE", "PRIVATE_CODE"), "access_code_message_html": str(0), "marketing_message": str(0),
	}}
	// User: nested in domain users; it has full_name, ReadOnlyUser does not.
	docUser = &schema{name: "User", required: []string{"email"}, props: map[string]prop{
		"id": str(0), "email": {kind: kEmail, maxLen: 254}, "first_name": str(50), "last_name": str(50), "full_name": str(0),
	}}
	docAccessCode = &schema{name: "AccessCode", required: []string{"id"}, props: map[string]prop{
		"id": str(0), "code": str(0),
		"pool": obj(&schema{name: "AccessCodePool", required: []string{"id", "name"}, props: map[string]prop{"id": str(0), "name": str(255)}}),
	}}
	// DomainUserListItem, plus signup_fields as DomainUserDetail has them: the list sends them
	// with include_signup_field_data, a parameter of domains_users_list the client sets.
	docDomainUser = &schema{name: "DomainUserListItem", props: map[string]prop{
		"user": obj(docUser), "active": boolean, "marketing_optin": boolean.null(), "enrolled_at": dateTime,
		"expires_at": dateTime.null(), "access_code": obj(docAccessCode).looseNull(),
		"signup_fields": arr(obj(&schema{name: "UserSignupFieldValue", required: []string{"signup_field", "value"}, props: map[string]prop{
			"signup_field": obj(&schema{name: "SignupFieldSummary", required: []string{"id"}, props: map[string]prop{"id": str(0), "label": str(0)}}),
			"value":        str(0),
		}})),
	}}
	docCourseSummary = &schema{name: "CourseSummary", props: map[string]prop{
		"id": str(0), "title": str(0), "lesson_count": integer, "required_lesson_count": integer,
	}}
	docCourse = &schema{name: "Course", required: []string{"enforce_sequential_navigation", "short_description", "title"}, props: map[string]prop{
		"id": str(0), "enforce_sequential_navigation": boolean, "long_description_html": str(0), "short_description": str(0),
		// A course without a draft origin, promo image or rating: null, as §12 records for
		// the fields of records without them.
		"title": str(0), "labels": arr(str(0)), "draft_origin_id": str(0).looseNull(), "promo_image_url": str(0).looseNull(),
		"display_course_and_lesson_time": boolean, "manual_course_time": str(15), "display_manual_course_time": boolean,
		"course_and_lesson_time_format": enum("HOURS_MINUTES_SECONDS", "HOURS_MINUTES", "HOURS_MINUTES_VERBOSE", "MINUTES_VERBOSE"),
		"course_time":                   str(0), "created_at": dateTime, "modified_at": dateTime,
		"average_rating": prop{kind: kNumber}.between(-10, 10).looseNull(),
	}}
	docOffer = &schema{name: "Offer", required: []string{"price", "registration_open"}, props: map[string]prop{
		"id": str(0), "registration_open": boolean, "registration_url": str(0),
		"price": obj(&schema{name: "Price", props: map[string]prop{"amount": str(0), "currency_code": str(0)}}),
	}}
	docPublishedCourse = &schema{name: "PublishedCourse", props: map[string]prop{
		"id": str(0), "course": obj(docCourseSummary), "slug": str(100).pat(`^[a-z0-9]+(-[a-z0-9]+)+$`),
		"course_url": str(0), "hidden": boolean, "strict_enforce_group_visibility": boolean, "registration_required": boolean,
		"registration_starts_at": dateTime.looseNull(), "registration_ends_at": dateTime.looseNull(),
		"restrict_access_start_end_dates": boolean, "allow_self_service_reenroll": boolean,
		"unique_progress_per_enrollment": boolean, "require_all_prerequisites": boolean,
		"timezone": str(0).null(), "offer": obj(docOffer).looseNull(),
	}}
	docReadOnlyUser = &schema{name: "ReadOnlyUser", required: []string{"id"}, props: map[string]prop{
		"id": str(0), "email": {kind: kEmail}, "first_name": str(0), "last_name": str(0),
	}}
	docUserOverview = &schema{name: "UserOverview", props: map[string]prop{
		"user": obj(docReadOnlyUser), "registration_count": integer, "completion_count": integer,
		"signed_up_at": dateTime, "latest_activity": dateTime.looseNull(), "inactive_at": dateTime.null(),
	}}
	docCourseProgress = &schema{name: "CourseProgress", props: map[string]prop{
		"course_progress_id": str(0), "completed_lesson_count": integer, "completed_required_lesson_count": integer,
		"completed_at": dateTime.null(), "latest_activity": dateTime.looseNull(),
		"score": integer.between(0, 2147483647).null(), "max_score": integer.between(0, 2147483647).null(),
		"credits_earned": str(20), "credit_unit_plural": str(40), "success_status": enum("PASSED", "FAILED").null(),
	}}
	docUserProgress = &schema{name: "UserPublishedCourseProgress", required: []string{"course_progress"}, props: map[string]prop{
		"published_course_id": str(0), "domain_name": str(0), "enrolled_at": dateTime, "enrollment_id": str(0),
		"course": obj(docCourseSummary), "course_progress": obj(docCourseProgress),
		"certificate": obj(&schema{name: "Certificate", props: map[string]prop{
			"code": str(0), "validate_url": {kind: kURI}, "issued_at": dateTime, "expires_at": dateTime.null(),
		}}).looseNull(),
		"all_enrollments": arr(obj(&schema{name: "UserEnrollment", required: []string{"course_progress_id", "enrollment_id"}, props: map[string]prop{
			"course_progress_id": str(0), "active": boolean, "expires_at": dateTime.null(), "enrollment_id": str(0),
		}})),
	}}
)

// page is the envelope of a page-number paged list (PaginatedXxxList); /v1/users in cursor
// mode has no count (§12: documented as an array, seen live as {next, previous, results}).
func page(results *schema, counted bool) *schema {
	s := &schema{name: "Paginated" + results.name + "List", required: []string{"results"}, props: map[string]prop{
		"next": prop{kind: kURI}.null(), "previous": prop{kind: kURI}.null(), "results": arr(obj(results)),
	}}
	if counted {
		s.props["count"] = integer
		s.required = append(s.required, "count")
	}
	return s
}

// check validates a decoded JSON value against p, appending what does not conform.
func check(path string, v any, p prop, errs *[]string) {
	bad := func(format string, args ...any) { *errs = append(*errs, path+": "+fmt.Sprintf(format, args...)) }
	if v == nil {
		if !p.nullable && !p.loose {
			bad("null, but the document does not make it nullable")
		}
		return
	}
	switch p.kind {
	case kString, kEmail, kURI, kDateTime:
		s, ok := v.(string)
		if !ok {
			bad("%T, want a string", v)
			return
		}
		switch {
		case p.maxLen > 0 && utf8.RuneCountInString(s) > p.maxLen:
			bad("%d characters, the document allows %d", utf8.RuneCountInString(s), p.maxLen)
		case p.pattern != nil && !p.pattern.MatchString(s):
			bad("%q does not match %s", s, p.pattern)
		case len(p.enum) > 0 && !slices.Contains(p.enum, s):
			bad("%q is not one of %v", s, p.enum)
		case p.kind == kEmail && !strings.Contains(s, "@"):
			bad("%q is not an email address", s)
		case p.kind == kURI:
			if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Host == "" {
				bad("%q is not an absolute URI", s)
			}
		case p.kind == kDateTime:
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				bad("%q is not an ISO 8601 date-time", s)
			}
		}
	case kInteger, kNumber:
		n, ok := v.(json.Number)
		if !ok {
			bad("%T, want a number", v)
			return
		}
		f, _ := n.Float64()
		if _, err := n.Int64(); p.kind == kInteger && err != nil {
			bad("%s is not an integer", n)
		}
		if p.min != nil && (f < *p.min || f > *p.max) {
			bad("%s outside [%v, %v]", n, *p.min, *p.max)
		}
	case kBoolean:
		if _, ok := v.(bool); !ok {
			bad("%T, want a boolean", v)
		}
	case kArray:
		list, ok := v.([]any)
		if !ok {
			bad("%T, want an array", v)
			return
		}
		for i, item := range list {
			check(fmt.Sprintf("%s[%d]", path, i), item, *p.items, errs)
		}
	case kObject:
		m, ok := v.(map[string]any)
		if !ok {
			bad("%T, want an object", v)
			return
		}
		for _, r := range p.object.required {
			if _, ok := m[r]; !ok {
				bad("lacks the required %s of %s", r, p.object.name)
			}
		}
		for k, fv := range m {
			fp, ok := p.object.props[k]
			if !ok {
				bad("%s is not a property of %s", k, p.object.name)
				continue
			}
			check(path+"."+k, fv, fp, errs)
		}
	}
}

// conforms fetches every page of a list (or one answer) and checks each against want.
func conforms(t *testing.T, c *apiClient, target string, want prop) int {
	t.Helper()
	var errs []string
	n := 0
	for next := target; next != "" && len(errs) < 20; n++ {
		_, body := c.get(next)
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("GET %s: %v", next, err)
		}
		check(target, v, want, &errs)
		next = ""
		if m, ok := v.(map[string]any); ok {
			next, _ = m["next"].(string)
		}
	}
	if len(errs) > 0 {
		t.Errorf("%s does not conform to the published document:\n%s", target, strings.Join(errs, "\n"))
	}
	return n
}

func TestAnswersConformToThePublishedV1Document(t *testing.T) {
	// Enough learners for re-enrollments, certificates, expiries and inactive learners; the
	// generator covers its edge cases at this size (org_test.go).
	s := start(t, skilljarsim.Config{Users: 300, Courses: 20, Seed: 4})
	c := newClient(t, s)
	org := s.Org()
	d := url.PathEscape(org.Domains[0].Name)
	conforms(t, c, "/v1/domains", obj(page(docDomain, true)))
	conforms(t, c, "/v1/domains/"+d+"/users?page_size=100&include_signup_field_data=true", obj(page(docDomainUser, true)))
	conforms(t, c, "/v1/domains/"+d+"/users?page_size=100", obj(page(docDomainUser, true)))
	conforms(t, c, "/v1/courses?page_size=100", obj(page(docCourse, true)))
	for _, dom := range org.Domains {
		conforms(t, c, "/v1/domains/"+url.PathEscape(dom.Name)+"/published-courses", obj(page(docPublishedCourse, true)))
	}
	conforms(t, c, "/v1/users?page_size=100", obj(page(docUserOverview, false)))
	conforms(t, c, "/v1/users?page=1&page_size=100", obj(page(docUserOverview, true)))
	checked := 0
	for _, l := range org.Learners {
		if len(org.ProgressOf(l.ID)) > 0 && checked < 60 {
			conforms(t, c, "/v1/users/"+l.ID+"/published-courses", arr(obj(docUserProgress)))
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no learner with progress to check")
	}
	if resp, body := c.get("/v1/ping"); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("ping = %d %q; the document says 200, no response body", resp.StatusCode, body)
	}
}

// A check that cannot fail proves nothing: each kind of departure is caught.
func TestConformanceCheckCatchesDepartures(t *testing.T) {
	for name, tc := range map[string]struct {
		json string
		want string
	}{
		"one-word slug":         {`{"slug": "intro"}`, `does not match`},
		"unknown key":           {`{"slug": "a-b", "extra": 1}`, "extra is not a property"},
		"null not nullable":     {`{"hidden": null}`, "null, but"},
		"string for a bool":     {`{"hidden": "true"}`, "want a boolean"},
		"float for an integer":  {`{"course": {"lesson_count": 1.5}}`, "not an integer"},
		"bad date-time":         {`{"registration_starts_at": "2024-01-02 03:04"}`, "not an ISO 8601"},
		"enum value":            {`{"offer": {"registration_open": true, "price": {}, "id": "x"}, "timezone": 3}`, "want a string"},
		"required missing":      {`{"offer": {"price": {}}}`, "lacks the required registration_open"},
		"slug over 100 letters": {`{"slug": "a-` + strings.Repeat("b", 100) + `"}`, "the document allows 100"},
	} {
		dec := json.NewDecoder(strings.NewReader(tc.json))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var errs []string
		check("pc", v, obj(docPublishedCourse), &errs)
		if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
			t.Errorf("%s: errors %q, want one saying %q", name, errs, tc.want)
		}
	}
	var errs []string
	check("p", map[string]any{"success_status": "PENDING"}, obj(docCourseProgress), &errs)
	if len(errs) != 1 || !strings.Contains(errs[0], "not one of [PASSED FAILED]") {
		t.Errorf("success_status PENDING: %q", errs)
	}
}
