package skilljarsim_test

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func ids(rows []skilljar.DomainUser) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.User.ID
	}
	return out
}

func TestUnstableOrderShufflesTiesOnEveryRequestSoPagesShift(t *testing.T) {
	// 400 learners over six years in 30-day spans: about five tie per span.
	s := start(t, skilljarsim.Config{Users: 400, Domains: 1, UserOrder: skilljarsim.OrderUnstable})
	c := newClient(t, s)
	const path = "/v1/domains/learn.example.com/users?page_size=1000"
	var first, second struct{ Results []skilljar.DomainUser }
	c.getJSON(path, &first)
	c.getJSON(path, &second)
	if slices.Equal(ids(first.Results), ids(second.Results)) {
		t.Fatal("two requests served the same order")
	}
	a, b := ids(first.Results), ids(second.Results)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) || len(a) != len(s.Org().LearnersIn("learn.example.com")) {
		t.Fatal("the two orders do not hold the same members")
	}
	// Only ties move: every row stays within its 30-day span, so spans come in order.
	span := func(r skilljar.DomainUser) time.Time { return r.EnrolledAt.Truncate(30 * 24 * time.Hour) }
	for i := 1; i < len(first.Results); i++ {
		if span(first.Results[i]).Before(span(first.Results[i-1])) {
			t.Fatalf("row %d's span comes before row %d's", i, i-1)
		}
	}
	// A page-number crawl sees some members twice and misses others.
	seen := map[string]int{}
	for _, row := range walk[skilljar.DomainUser](c, "/v1/domains/learn.example.com/users?page_size=10") {
		seen[row.User.ID]++
	}
	if len(seen) == len(a) {
		t.Fatal("a crawl of 40 pages saw every member exactly once; ties did not shift pages")
	}
}

func TestUnstableOrderKeepsTheUsersCursorInSignUpOrder(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 150, UserOrder: skilljarsim.OrderUnstable})
	c := newClient(t, s)
	got := walk[skilljar.UserOverview](c, "/v1/users?page_size=40")
	org := s.Org()
	if len(got) != len(org.Learners) {
		t.Fatalf("cursor crawl saw %d of %d learners", len(got), len(org.Learners))
	}
	for i, u := range got {
		if u.User.ID != org.Learners[i].ID {
			t.Fatalf("row %d is %s, want %s in sign-up order", i, u.User.ID, org.Learners[i].ID)
		}
	}
}

func TestMembershipChurnTakesMembersOffTheListAndStopBringsThemBack(t *testing.T) {
	s := start(t, skilljarsim.Config{Users: 200, Domains: 2, Seed: 3})
	c := newClient(t, s)
	list := func(domain string) []string {
		var page struct{ Results []skilljar.DomainUser }
		c.getJSON("/v1/domains/"+domain+"/users?page_size=1000", &page)
		return ids(page.Results)
	}
	domains := []string{"learn.example.com", s.Org().Domains[1].Name}
	initial := map[string][]string{}
	for _, d := range domains {
		initial[d] = ids2(s.Org().LearnersIn(d))
	}
	stop := s.StartChurn(500)
	deadline := time.Now().Add(5 * time.Second)
	// Churn both moves members and signs new learners up: watch until both have happened.
	left, joined := false, false
	for !(left && joined) && time.Now().Before(deadline) {
		joined = len(s.Org().Learners) > 200
		for _, d := range domains {
			listed := list(d)
			// The first members stay members throughout; one missing from the list left it.
			left = left || slices.ContainsFunc(initial[d], func(id string) bool { return !slices.Contains(listed, id) })
		}
	}
	stop()
	if !left {
		t.Fatal("no member left a domain's list while churn ran")
	}
	org := s.Org()
	for _, d := range domains {
		// Rejoined members list last, as joining now: the list is in joining order again.
		if want, got := ids2(org.LearnersIn(d)), list(d); !slices.Equal(got, want) {
			t.Fatalf("after stop, %s lists %d members out of joining order; the org has %d", d, len(got), len(want))
		}
	}
	if !joined {
		t.Fatal("churn brought no new learner")
	}
}

func ids2(ls []skilljarsim.Learner) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}

// slugPattern is PublishedCourse.slug's pattern in Skilljar's published v1 document.
var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)+$`)

func TestEverySlugMatchesThePublishedPattern(t *testing.T) {
	// Among the generated titles, "データ分析入門" has no ASCII word and "データ分析入門 2" one:
	// slugs of zero or one word must still have two.
	s := start(t, skilljarsim.Config{Users: 10, Courses: 40, Seed: 9})
	for _, pc := range s.Org().PublishedCourses {
		if !slugPattern.MatchString(pc.Slug) {
			t.Fatalf("slug %q does not match %s", pc.Slug, slugPattern)
		}
	}
}
