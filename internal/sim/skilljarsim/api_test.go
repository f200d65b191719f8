package skilljarsim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func TestAuthenticationFailuresAnswer401WithDRFDetail(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 10, PerMinute: 1})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, header, detail string
	}{
		{"no credentials", "", "Authentication credentials were not provided."},
		{"wrong key", "Basic " + b64("sk-live-wrong:"), "Invalid username/password."},
		{"key sent as the password", "Basic " + b64(":"+s.APIKey()), "Invalid username/password."},
		{"key with a password", "Basic " + b64(s.APIKey()+":secret"), "Invalid username/password."},
		{"key as a bearer token", "Bearer " + s.APIKey(), "Authentication credentials were not provided."},
		{"not base64", "Basic %%%", "Invalid basic header. Credentials not correctly base64 encoded."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/domains", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Detail string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusUnauthorized || body.Detail != tc.detail {
				t.Errorf("got %d %q, want 401 %q", resp.StatusCode, body.Detail, tc.detail)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="api"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}

	// The six refused calls spent none of the one-call budget.
	resp, body := newClient(t, s).get("/v1/ping")
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("authenticated ping: got %d %q, want an empty 200", resp.StatusCode, body)
	}
}

func TestUnknownRecordsAndPathsAnswer404NotFound(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 20})
	org := s.Org()
	c := newClient(t, s)
	var otherDomainPC string
	for _, pc := range org.PublishedCourses {
		if pc.Domain != "learn.example.com" {
			otherDomainPC = pc.ID
			break
		}
	}
	for _, path := range []string{
		"/v1/domains/nope.example.com",
		"/v1/domains/nope.example.com/users",
		"/v1/domains/learn.example.com/users/zzzzzzzzzzzzz",
		"/v1/domains/learn.example.com/published-courses/" + otherDomainPC,
		"/v1/domains/learn.example.com/published-courses/" + otherDomainPC + "/enrollments",
		"/v1/users/zzzzzzzzzzzzz",
		"/v1/users/zzzzzzzzzzzzz/published-courses",
		"/v1/courses/zzzzzzzzzzzzz",
		"/v1/enrollments",
	} {
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusNotFound || detailOf(t, body) != "Not found." {
			t.Errorf("GET %s: got %d %s, want 404 Not found.", path, resp.StatusCode, body)
		}
	}
}

func TestPageNumberPagingFollowsDRF(t *testing.T) {
	s := start(t, skilljarsim.Config{Domains: 1, Users: 1234})
	c := newClient(t, s)
	const users = "/v1/domains/learn.example.com/users"

	t.Run("default page size is 100", func(t *testing.T) {
		var env struct {
			Count   int
			Results []json.RawMessage
		}
		c.getJSON(users, &env)
		if env.Count != 1234 || len(env.Results) != 100 {
			t.Errorf("got count %d with %d results, want 1234 with 100", env.Count, len(env.Results))
		}
	})
	t.Run("page_size is capped at 1000", func(t *testing.T) {
		var env struct {
			Next    *string
			Results []json.RawMessage
		}
		c.getJSON(users+"?page_size=5000", &env)
		if len(env.Results) != 1000 || env.Next == nil {
			t.Fatalf("got %d results, next %v; want 1000 and a next page", len(env.Results), env.Next)
		}
		c.getJSON(*env.Next, &env)
		if len(env.Results) != 234 || env.Next != nil {
			t.Errorf("second page: got %d results, next %v; want the last 234", len(env.Results), env.Next)
		}
	})
	t.Run("links are absolute and keep the other parameters", func(t *testing.T) {
		var env struct{ Next, Previous *string }
		c.getJSON(users+"?page=2&page_size=10&include_signup_field_data=true", &env)
		wantNext := s.URL() + users + "?include_signup_field_data=true&page=3&page_size=10"
		wantPrev := s.URL() + users + "?include_signup_field_data=true&page_size=10"
		if env.Next == nil || *env.Next != wantNext || env.Previous == nil || *env.Previous != wantPrev {
			t.Errorf("next %v, previous %v; want %s and %s", deref(env.Next), deref(env.Previous), wantNext, wantPrev)
		}
	})
	t.Run("a page outside the list is Invalid page", func(t *testing.T) {
		for _, q := range []string{"page=14", "page=0", "page=-1", "page=two", "page=1.0", "page=3&page_size=1000"} {
			resp, body := c.get(users + "?" + q)
			if resp.StatusCode != http.StatusNotFound || detailOf(t, body) != "Invalid page." {
				t.Errorf("%s: got %d %s, want 404 Invalid page.", q, resp.StatusCode, body)
			}
		}
	})
	t.Run("the first page of an empty list is empty", func(t *testing.T) {
		var env struct {
			Count   int
			Results []json.RawMessage
		}
		c.getJSON("/v1/lessons?course_id=zzzzzzzzzzzzz", &env)
		if env.Count != 0 || env.Results == nil || len(env.Results) != 0 {
			t.Errorf("got %+v, want count 0 and results []", env)
		}
	})
	t.Run("page_size is ignored where it is not documented", func(t *testing.T) {
		var env struct{ Results []json.RawMessage }
		c.getJSON("/v1/domains/learn.example.com/published-courses?page_size=2", &env)
		if len(env.Results) <= 2 {
			t.Errorf("published courses honoured page_size=2: %d results", len(env.Results))
		}
	})
	t.Run("lessons require course_id", func(t *testing.T) {
		resp, body := c.get("/v1/lessons")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"course_id":["This field is required."]`) {
			t.Errorf("got %d %s, want 400 naming course_id", resp.StatusCode, body)
		}
	})
	t.Run("a trailing slash reaches the same endpoint", func(t *testing.T) {
		var env struct{ Count int }
		c.getJSON(users+"/", &env)
		if env.Count != 1234 {
			t.Errorf("count %d", env.Count)
		}
	})
}

func TestUsersListIsCursorPagedUnlessAPageIsNamed(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 250})
	org := s.Org()
	c := newClient(t, s)

	var first map[string]json.RawMessage
	c.getJSON("/v1/users?page_size=100", &first)
	if _, ok := first["count"]; ok {
		t.Error("cursor envelope carries a count")
	}
	var next string
	_ = json.Unmarshal(first["next"], &next)
	u, err := url.Parse(next)
	if err != nil || u.Query().Get("page_size") != "100" {
		t.Fatalf("next %q does not keep page_size", next)
	}
	raw, err := base64.StdEncoding.DecodeString(u.Query().Get("cursor"))
	if err != nil || !strings.HasPrefix(string(raw), "p=") {
		t.Errorf("cursor %q is not DRF's base64 of p=<position>", u.Query().Get("cursor"))
	}

	overviews := walk[skilljar.UserOverview](c, "/v1/users?page_size=100")
	if len(overviews) != len(org.Learners) {
		t.Fatalf("walk: %d users, generated %d", len(overviews), len(org.Learners))
	}
	for i, ov := range overviews {
		if ov.User.ID != org.Learners[i].ID {
			t.Fatalf("row %d: %s, want %s (sign-up order)", i, ov.User.ID, org.Learners[i].ID)
		}
	}

	t.Run("previous goes back a page", func(t *testing.T) {
		var page2 struct {
			Previous *string
			Results  []skilljar.UserOverview
		}
		c.getJSON(next, &page2)
		var back struct{ Results []skilljar.UserOverview }
		c.getJSON(*page2.Previous, &back)
		if len(back.Results) != 100 || back.Results[0].User.ID != org.Learners[0].ID || back.Results[99].User.ID != org.Learners[99].ID {
			t.Errorf("previous page holds %d rows starting %s", len(back.Results), back.Results[0].User.ID)
		}
	})
	t.Run("a bad cursor is Invalid cursor", func(t *testing.T) {
		resp, body := c.get("/v1/users?cursor=bm90LWEtY3Vyc29y")
		if resp.StatusCode != http.StatusNotFound || detailOf(t, body) != "Invalid cursor" {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("page switches to page numbers with a count", func(t *testing.T) {
		var env struct {
			Count   int
			Results []skilljar.UserOverview
		}
		c.getJSON("/v1/users?page=2&page_size=100", &env)
		if env.Count != 250 || len(env.Results) != 100 || env.Results[0].User.ID != org.Learners[100].ID {
			t.Errorf("got count %d, %d rows", env.Count, len(env.Results))
		}
	})
	t.Run("filters", func(t *testing.T) {
		var env struct{ Results []skilljar.UserOverview }
		c.getJSON("/v1/users?email="+url.QueryEscape(org.Learners[42].Email), &env)
		if len(env.Results) != 1 || env.Results[0].User.ID != org.Learners[42].ID {
			t.Errorf("email filter: %+v", env.Results)
		}
		inactive := 0
		for _, l := range org.Learners {
			if l.InactiveAt != nil {
				inactive++
			}
		}
		if got := len(walk[skilljar.UserOverview](c, "/v1/users?is_inactive=true")); got != inactive {
			t.Errorf("is_inactive=true: %d users, generated %d", got, inactive)
		}
	})
}

func TestDomainUsersSignupFieldsAndFilters(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 200})
	org := s.Org()
	c := newClient(t, s)
	const path = "/v1/domains/partners.example.com/users"

	var plain struct{ Results []map[string]json.RawMessage }
	c.getJSON(path, &plain)
	if _, ok := plain.Results[0]["signup_fields"]; ok {
		t.Error("signup_fields sent without include_signup_field_data")
	}
	var with struct{ Results []skilljar.DomainUser }
	c.getJSON(path+"?include_signup_field_data=true", &with)
	got := with.Results[0].SignupFields
	if len(got) != 2 || got[0].SignupField.Label != "Company" || got[1].SignupField.Label != "Job Title" || got[0].Value == "" {
		t.Errorf("signup fields: %+v", got)
	}

	members := org.LearnersIn("partners.example.com")
	var byEmail struct {
		Count   int
		Results []skilljar.DomainUser
	}
	c.getJSON(path+"?user__email="+url.QueryEscape(members[3].Email), &byEmail)
	if byEmail.Count != 1 || byEmail.Results[0].User.ID != members[3].ID {
		t.Errorf("user__email filter: %+v", byEmail)
	}
	inactive := 0
	for _, l := range members {
		for _, m := range l.Memberships {
			if m.Domain == "partners.example.com" && !m.Active {
				inactive++
			}
		}
	}
	if n := len(walk[skilljar.DomainUser](c, path+"?active=false")); n != inactive {
		t.Errorf("active=false: %d members, generated %d", n, inactive)
	}
}

var drfStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$`)

func TestTimestampsAreDRFStyleUTC(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 100})
	c := newClient(t, s)
	var page struct {
		Results []struct {
			SignedUpAt     string  `json:"signed_up_at"`
			LatestActivity string  `json:"latest_activity"`
			InactiveAt     *string `json:"inactive_at"`
		}
	}
	c.getJSON("/v1/users?page_size=100", &page)
	withMicros, whole := 0, 0
	for _, r := range page.Results {
		for _, ts := range []string{r.SignedUpAt, r.LatestActivity, deref(r.InactiveAt)} {
			if ts == "" {
				continue
			}
			if !drfStamp.MatchString(ts) {
				t.Fatalf("timestamp %q is not DRF style", ts)
			}
			if strings.Contains(ts, ".") {
				withMicros++
			} else {
				whole++
			}
		}
	}
	if withMicros == 0 || whole == 0 {
		t.Errorf("want both forms: %d with microseconds, %d whole seconds", withMicros, whole)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
