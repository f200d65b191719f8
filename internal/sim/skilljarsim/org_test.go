package skilljarsim_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func TestSameSeedGeneratesTheSameOrg(t *testing.T) {
	cfg := skilljarsim.Config{Seed: 42, Domains: 4, Users: 500, Courses: 15}
	a, b := skilljarsim.New(cfg), skilljarsim.New(cfg)
	ja, _ := json.Marshal(a.Org())
	jb, _ := json.Marshal(b.Org())
	if string(ja) != string(jb) || a.APIKey() != b.APIKey() {
		t.Error("two orgs from the same seed differ")
	}
	cfg.Seed = 43
	c := skilljarsim.New(cfg)
	jc, _ := json.Marshal(c.Org())
	if string(jc) == string(ja) || c.APIKey() == a.APIKey() {
		t.Error("a different seed generated the same org")
	}
}

var (
	idShape    = regexp.MustCompile(`^[0-9a-z]{13}$`)
	emailShape = regexp.MustCompile(`^[A-Za-z0-9._+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]+$`)
)

// The generator probes the limits a sink must handle and mixes every kind of row.
func TestGeneratedOrgCoversTheEdgeCases(t *testing.T) {
	org := skilljarsim.New(skilljarsim.Config{Seed: 3, Users: 3000}).Org()
	checkID := func(kind, id string) {
		if !idShape.MatchString(id) {
			t.Fatalf("%s id %q is not 13 lowercase alphanumerics", kind, id)
		}
	}
	count := map[string]int{}
	emails := map[string]bool{}
	for _, l := range org.Learners {
		checkID("learner", l.ID)
		if !emailShape.MatchString(l.Email) || len(l.Email) > 80 || strings.Contains(l.Email, "..") {
			t.Errorf("email %q is not one Salesforce accepts", l.Email)
		}
		if lower := strings.ToLower(l.Email); emails[lower] {
			t.Errorf("email %q repeats case-insensitively", l.Email)
		} else {
			emails[lower] = true
		}
		for _, n := range []string{l.FirstName, l.LastName} {
			if utf8.RuneCountInString(n) > 50 || strings.TrimSpace(n) != n {
				t.Errorf("name %q is over 50 characters or padded", n)
			}
			if utf8.RuneCountInString(n) == 50 {
				count["50-character name"]++
			}
			if utf8.RuneCountInString(n) != len(n) {
				count["non-ASCII name"]++
			}
		}
		for sub, kind := range map[string]string{"+": "email with +", "'": "email with '"} {
			if strings.Contains(l.Email, sub) {
				count[kind]++
			}
		}
		if strings.ToLower(l.Email) != l.Email {
			count["mixed-case email"]++
		}
		if len(l.Memberships) > 1 {
			count["several domains"]++
		}
	}
	for _, c := range org.Courses {
		checkID("course", c.ID)
		if n := utf8.RuneCountInString(c.Title); n > 255 {
			t.Errorf("course title over 255 characters: %d", n)
		} else if n == 255 {
			count["255-character title"]++
		}
	}
	publications := map[string]int{}
	for _, pc := range org.PublishedCourses {
		checkID("published course", pc.ID)
		publications[pc.CourseID]++
		if pc.UniqueProgressPerEnrollment {
			count["unique progress per enrollment"]++
		}
	}
	for _, p := range org.Progress {
		checkID("course progress", p.CourseProgressID)
		checkID("enrollment", p.EnrollmentID)
		switch {
		case !p.Completed():
			count["in progress"]++
		case p.SuccessStatus == "":
			count["completed without status"]++
		default:
			count[p.SuccessStatus]++
		}
		if len(p.History) > 0 {
			count["re-enrolled"]++
		}
		if p.LatestActivity.Before(p.EnrolledAt) || p.Completed() && p.CompletedAt.Before(p.EnrolledAt) {
			t.Errorf("row %s is out of time order", p.CourseProgressID)
		}
	}
	for _, kind := range []string{"50-character name", "non-ASCII name", "email with +", "email with '", "mixed-case email",
		"255-character title", "in progress", "completed without status", "PASSED", "FAILED", "re-enrolled"} {
		if count[kind] == 0 {
			t.Errorf("no %s generated", kind)
		}
	}
	if share := float64(count["several domains"]) / float64(len(org.Learners)); share < 0.10 || share > 0.20 {
		t.Errorf("%.0f%% of learners in several domains, want about 15%%", 100*share)
	}
	if share := float64(count["unique progress per enrollment"]) / float64(len(org.PublishedCourses)); share < 0.15 || share > 0.25 {
		t.Errorf("%.0f%% of published courses with unique progress, want about 20%%", 100*share)
	}
	if perLearner := float64(len(org.Progress)) / float64(len(org.Learners)); perLearner < 4.5 || perLearner > 5.5 {
		t.Errorf("%.2f progress rows per learner, want about 5", perLearner)
	}
	if publications[org.Courses[0].ID] != len(org.Domains) {
		t.Errorf("the first course is published to %d domains, want all %d", publications[org.Courses[0].ID], len(org.Domains))
	}
}

func TestLearnerInSeveralDomainsIsListedInEachAndProgressSpansThem(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 300})
	org := s.Org()
	c := newClient(t, s)
	i := slices.IndexFunc(org.Learners, func(l skilljarsim.Learner) bool {
		domains := map[string]bool{}
		for _, p := range org.ProgressOf(l.ID) {
			domains[p.Domain] = true
		}
		return len(l.Memberships) > 1 && len(domains) > 1
	})
	if i < 0 {
		t.Fatal("no learner with progress in several domains")
	}
	l := org.Learners[i]
	for _, m := range l.Memberships {
		var env struct {
			Count   int
			Results []skilljar.DomainUser
		}
		c.getJSON("/v1/domains/"+m.Domain+"/users?user__email="+strings.ReplaceAll(l.Email, "+", "%2B"), &env)
		if env.Count != 1 || env.Results[0].User.ID != l.ID || !env.Results[0].EnrolledAt.Equal(m.EnrolledAt) {
			t.Errorf("%s in %s: %+v", l.ID, m.Domain, env)
		}
	}
	var rows []skilljar.UserCourseProgress
	c.getJSON("/v1/users/"+l.ID+"/published-courses", &rows)
	domains := map[string]bool{}
	for _, r := range rows {
		domains[r.DomainName] = true
	}
	if len(domains) < 2 {
		t.Errorf("progress array covers domains %v, want every domain of the learner", domains)
	}
}

func TestCallsAreRecordedByEndpointPatternAndStatus(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10})
	org := s.Org()
	c := newClient(t, s)
	c.get("/v1/users/" + org.Learners[0].ID + "/published-courses")
	c.get("/v1/users/" + org.Learners[1].ID + "/published-courses")
	c.get("/v1/users/zzzzzzzzzzzzz/published-courses")
	c.key = "wrong"
	c.get("/v1/users/" + org.Learners[0].ID + "/published-courses")
	c.get("/v2/nothing")

	const ep = "GET /v1/users/{id}/published-courses"
	want := []skilljarsim.CallStat{
		{Endpoint: "GET (unmatched)", Status: http.StatusNotFound, Count: 1},
		{Endpoint: ep, Status: http.StatusOK, Count: 2},
		{Endpoint: ep, Status: http.StatusUnauthorized, Count: 1},
		{Endpoint: ep, Status: http.StatusNotFound, Count: 1},
	}
	if got := s.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls() = %+v\nwant %+v", got, want)
	}
	if s.CallCount(ep) != 4 || s.TotalCalls() != 5 {
		t.Errorf("CallCount %d, TotalCalls %d; want 4 and 5", s.CallCount(ep), s.TotalCalls())
	}
}

func TestInvalidConfigIsRejectedWithTheFieldNamed(t *testing.T) {
	_, err := skilljarsim.Start(skilljarsim.Config{Users: -1, FaultRate: 2, UserOrder: "alphabetical"}, "127.0.0.1:0")
	if err == nil {
		t.Fatal("Start accepted an invalid config")
	}
	for _, field := range []string{"Users", "FaultRate", "UserOrder"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted an invalid config")
		}
	}()
	skilljarsim.New(skilljarsim.Config{TimeScale: -1})
}

func TestHandlerServesWithoutStart(t *testing.T) {
	s := skilljarsim.New(skilljarsim.Config{Users: 5})
	if s.URL() != "" {
		t.Errorf("URL() = %q before Start", s.URL())
	}
	req, _ := http.NewRequest(http.MethodGet, "/v1/ping", nil)
	req.SetBasicAuth(s.APIKey(), "")
	rec := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		t.Errorf("ping through Handler: %d", rec.status)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(status int)      { r.status = status }
