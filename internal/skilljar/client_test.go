package skilljar_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

func startSim(t *testing.T, cfg skilljarsim.Config) *skilljarsim.Sim {
	t.Helper()
	sim, err := skilljarsim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// simClient is a client for sim with fast retries; cfg's fields override the defaults.
func simClient(t *testing.T, sim *skilljarsim.Sim, cfg skilljar.Config) *skilljar.Client {
	t.Helper()
	cfg.BaseURL = sim.URL()
	if cfg.APIKey == "" {
		cfg.APIKey = sim.APIKey()
	}
	if cfg.RetryBaseDelay == 0 {
		cfg.RetryBaseDelay = time.Millisecond
	}
	if cfg.RetryMaxDelay == 0 {
		cfg.RetryMaxDelay = 20 * time.Millisecond
	}
	return newClient(t, cfg)
}

// walk follows a list from its first page (the empty cursor) to its last, checking the envelope as it goes.
func walk[T any](t *testing.T, fetch func(ctx context.Context, cursor string) (skilljar.Page[T], error)) (rows []T, pages []skilljar.Page[T]) {
	t.Helper()
	for cursor := ""; ; {
		p, err := fetch(context.Background(), cursor)
		if err != nil {
			t.Fatalf("page %q: %v", cursor, err)
		}
		if cursor != "" && p.URL != cursor {
			t.Fatalf("page fetched from %s reports URL %s", cursor, p.URL)
		}
		rows = append(rows, p.Results...)
		pages = append(pages, p)
		if cursor = p.Next; cursor == "" {
			return rows, pages
		}
	}
}

func TestEveryListIsWalkedToTheEndWithTheSimulatorsRecords(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 7, Domains: 3, Users: 230, Courses: 12})
	org := sim.Org()
	c := simClient(t, sim, skilljar.Config{PageSize: 40})
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	domains, err := c.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(domains), len(org.Domains); got != want {
		t.Fatalf("Domains returned %d, the org has %d", got, want)
	}

	for _, d := range domains {
		users, pages := walk(t, func(ctx context.Context, cursor string) (skilljar.Page[skilljar.DomainUser], error) {
			return c.DomainUsers(ctx, d.Name, cursor)
		})
		want := org.LearnersIn(d.Name)
		if len(pages) < 2 {
			t.Fatalf("domain %s fit in one page of 40; the test needs several", d.Name)
		}
		if !pages[0].HasCount || pages[0].Count != len(want) || len(users) != len(want) {
			t.Fatalf("domain %s: count %d (has %v), walked %d users, org has %d", d.Name, pages[0].Count, pages[0].HasCount, len(users), len(want))
		}
		for i, u := range users {
			l := want[i]
			if u.User.ID != l.ID || u.User.Email != l.Email || u.User.FirstName != l.FirstName {
				t.Fatalf("domain %s user %d = %+v, want %s %s %q", d.Name, i, u.User, l.ID, l.Email, l.FirstName)
			}
			for _, m := range l.Memberships {
				if m.Domain == d.Name && len(m.SignupFields) != len(u.SignupFields) {
					t.Fatalf("user %s on %s: %d signup fields, want %d (include_signup_field_data missing?)", l.ID, d.Name, len(u.SignupFields), len(m.SignupFields))
				}
			}
		}

		calls := sim.CallCount("GET /v1/domains/{domain}/users")
		n, err := c.DomainUserCount(ctx, d.Name)
		if err != nil || n != int64(len(want)) {
			t.Fatalf("DomainUserCount(%s) = %d, %v; the org has %d", d.Name, n, err, len(want))
		}
		if got := sim.CallCount("GET /v1/domains/{domain}/users") - calls; got != 1 {
			t.Fatalf("DomainUserCount(%s) cost %d calls, want 1", d.Name, got)
		}

		published, _ := walk(t, func(ctx context.Context, cursor string) (skilljar.Page[skilljar.PublishedCourse], error) {
			return c.PublishedCourses(ctx, d.Name, cursor)
		})
		wantPC := org.PublishedCoursesIn(d.Name)
		if len(published) != len(wantPC) {
			t.Fatalf("domain %s: %d published courses, want %d", d.Name, len(published), len(wantPC))
		}
		for i, pc := range published {
			if pc.ID != wantPC[i].ID || pc.Course.ID != wantPC[i].CourseID || pc.Domain != d.Name {
				t.Fatalf("domain %s published course %d = %s/%s on %q, want %s/%s", d.Name, i, pc.ID, pc.Course.ID, pc.Domain, wantPC[i].ID, wantPC[i].CourseID)
			}
		}
	}

	courses, coursePages := walk(t, c.Courses)
	if len(coursePages) != 1 || len(courses) != len(org.Courses) || coursePages[0].Count != len(org.Courses) {
		t.Fatalf("courses: %d in %d pages, want %d in 1 page of 40", len(courses), len(coursePages), len(org.Courses))
	}

	users, userPages := walk(t, c.Users)
	if len(userPages) < 2 || len(users) != len(org.Learners) {
		t.Fatalf("/v1/users: %d users in %d pages, want %d in several", len(users), len(userPages), len(org.Learners))
	}
	for _, p := range userPages {
		if p.HasCount {
			t.Fatal("a cursor page claims a count")
		}
	}
	seen := map[string]bool{}
	for _, u := range users {
		seen[u.User.ID] = true
	}
	if len(seen) != len(org.Learners) {
		t.Fatalf("/v1/users yielded %d distinct learners of %d", len(seen), len(org.Learners))
	}

	var withProgress, completed int
	for _, l := range org.Learners[:60] {
		got, err := c.UserProgress(ctx, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := org.ProgressOf(l.ID)
		if len(got) != len(want) {
			t.Fatalf("learner %s: %d progress rows, want %d", l.ID, len(got), len(want))
		}
		for i, p := range got {
			w := want[i]
			if p.PublishedCourseID != w.PublishedCourseID || p.DomainName != w.Domain ||
				p.CourseProgress.CourseProgressID != w.CourseProgressID || (p.CourseProgress.CompletedAt != nil) != w.Completed() ||
				len(p.AllEnrollments) != len(w.AllEnrollments()) {
				t.Fatalf("learner %s progress %d = %+v, want %+v", l.ID, i, p, w)
			}
			if w.Completed() {
				completed++
				if !p.CourseProgress.CompletedAt.Equal(*w.CompletedAt) {
					t.Fatalf("completed_at %v, want %v", p.CourseProgress.CompletedAt, w.CompletedAt)
				}
			}
		}
		if len(got) > 0 {
			withProgress++
		}
	}
	if withProgress == 0 || completed == 0 {
		t.Fatalf("the sample had %d learners with progress and %d completions; the test needs some", withProgress, completed)
	}
}

func TestAWrongKeyIsUnauthorizedWithAHintAndWithoutTheKey(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 1, Users: 10})
	wrong := "sk-live-wrong-key-987654"
	c := simClient(t, sim, skilljar.Config{APIKey: wrong})

	err := c.Ping(context.Background())
	var apiErr *skilljar.APIError
	if !errors.Is(err, skilljar.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("Ping with a wrong key = %v, want a 401 *APIError wrapping ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), "SKILLJAR_API_KEY") {
		t.Errorf("error %q should tell the operator which setting to fix", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), sim.APIKey()) {
		t.Errorf("error leaks a key: %v", err)
	}
	if n := sim.CallCount("GET /v1/ping"); n != 1 {
		t.Errorf("a rejected key was tried %d times; it cannot get better by retrying", n)
	}
}

func TestNotFoundAndInvalidPageAreDistinguishable(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 2, Users: 20})
	c := simClient(t, sim, skilljar.Config{})
	ctx := context.Background()
	domain := sim.Org().Domains[0].Name

	first, err := c.DomainUsers(ctx, domain, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DomainUsers(ctx, domain, first.URL+"&page=999")
	if !errors.Is(err, skilljar.ErrInvalidPage) || !errors.Is(err, skilljar.ErrNotFound) {
		t.Fatalf("a page past the end = %v, want ErrInvalidPage (a kind of ErrNotFound)", err)
	}

	_, err = c.UserProgress(ctx, "nosuchuser123")
	if !errors.Is(err, skilljar.ErrNotFound) || errors.Is(err, skilljar.ErrInvalidPage) {
		t.Fatalf("an unknown user = %v, want ErrNotFound but not ErrInvalidPage", err)
	}
	_, err = c.DomainUsers(ctx, "no-such-domain.example.com", "")
	if !errors.Is(err, skilljar.ErrNotFound) || !strings.Contains(err.Error(), "no-such-domain.example.com") {
		t.Fatalf("an unknown domain = %v, want ErrNotFound naming the URL", err)
	}
}

func TestTransientFaultsAreRetriedUntilThePageArrives(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault skilljarsim.Fault
	}{
		{"503", skilljarsim.Fault{Kind: skilljarsim.Fault5xx, Status: 503, Times: 3}},
		{"500", skilljarsim.Fault{Kind: skilljarsim.Fault5xx, Status: 500, Times: 2}},
		{"Garbled", skilljarsim.Fault{Kind: skilljarsim.FaultGarbled, Times: 3}},
		{"Truncated", skilljarsim.Fault{Kind: skilljarsim.FaultTruncated, Times: 3}},
		{"SlowPastTheRequestTimeout", skilljarsim.Fault{Kind: skilljarsim.FaultSlow, Times: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, skilljarsim.Config{Seed: 3, Users: 50, SlowDelay: 5 * time.Second})
			obs := &recorder{}
			c := simClient(t, sim, skilljar.Config{RequestTimeout: 300 * time.Millisecond, Observer: obs})
			domain := sim.Org().Domains[0].Name
			tc.fault.PathPrefix = "/v1/domains/" + domain + "/users"
			sim.InjectFault(tc.fault)

			page, err := c.DomainUsers(context.Background(), domain, "")
			if err != nil {
				t.Fatalf("after %d %s faults: %v", tc.fault.Times, tc.name, err)
			}
			if want := len(sim.Org().LearnersIn(domain)); len(page.Results) != want {
				t.Fatalf("got %d users, want %d", len(page.Results), want)
			}
			if got, want := sim.CallCount("GET /v1/domains/{domain}/users"), tc.fault.Times+1; got != want {
				t.Errorf("simulator saw %d calls, want %d (each fault once, then success)", got, want)
			}
			if got := obs.calls("domain_users"); got != tc.fault.Times+1 {
				t.Errorf("observer saw %d domain_users attempts, want %d", got, tc.fault.Times+1)
			}
		})
	}
}

func TestAPersistentlyMalformedPageFailsNamingItsURL(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 4, Users: 30})
	c := simClient(t, sim, skilljar.Config{MaxRetries: 3})
	sim.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/courses", Kind: skilljarsim.FaultGarbled, Times: 100})

	_, err := c.Courses(context.Background(), "")
	var bad *skilljar.MalformedPageError
	if !errors.As(err, &bad) || !strings.HasPrefix(bad.URL, sim.URL()+"/v1/courses?") {
		t.Fatalf("a page garbled every time = %v, want *MalformedPageError for the first courses page", err)
	}
	if !strings.Contains(err.Error(), bad.URL) {
		t.Errorf("error %q should name the page", err)
	}
	if got := sim.CallCount("GET /v1/courses"); got != 4 {
		t.Errorf("fetched the page %d times, want 1 + MaxRetries 3", got)
	}
	if strings.Contains(err.Error(), sim.APIKey()) {
		t.Errorf("error leaks the key: %v", err)
	}
}

func TestPersistent5xxGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 5, Users: 10})
	c := simClient(t, sim, skilljar.Config{MaxRetries: 2})
	sim.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/ping", Kind: skilljarsim.Fault5xx, Status: 502, Times: 100})

	err := c.Ping(context.Background())
	var apiErr *skilljar.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 502 {
		t.Fatalf("Ping against a dead upstream = %v, want the last 502 as *APIError", err)
	}
	if got := sim.CallCount("GET /v1/ping"); got != 3 {
		t.Errorf("tried %d times, want 1 + MaxRetries 2", got)
	}
}

func TestRateLimitedAnswersDoNotUseUpRetriesButAreBounded(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Seed: 6, Users: 10})
	ctx := context.Background()

	// Retry-After: 1 each time; MaxRetries 0 proves 429s are counted separately.
	c := simClient(t, sim, skilljar.Config{MaxRetries: -1, MaxRateLimited: 2})
	sim.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/ping", Kind: skilljarsim.Fault429, Times: 2})
	start := time.Now()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("two 429s within MaxRateLimited 2: %v", err)
	}
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("retried after %v; two Retry-After: 1 answers ask for at least 2s", waited)
	}

	sim.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/ping", Kind: skilljarsim.Fault429, Times: 3})
	err := c.Ping(ctx)
	var limited *skilljar.RateLimitedError
	if !errors.As(err, &limited) || limited.Responses != 3 || limited.RetryAfter != time.Second {
		t.Fatalf("three 429s with MaxRateLimited 2 = %v, want *RateLimitedError after 3 answers", err)
	}
}

// TestBurstsAgainstATightLimitEndWithoutErrors runs two "processes", each with its own
// Redis connection, limiter and client, fetching progress concurrently against a simulator
// whose limit is far below what they would do unthrottled.
func TestBurstsAgainstATightLimitEndWithoutErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// factor is the shared limiter's rate relative to the simulator's.
		factor int
	}{
		{"LimiterAtTheServersRate", 1},
		// Set too high, the limiter lets 429s through; every process must then back off
		// together through PauseUntil.
		{"LimiterTwiceTheServersRate", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// 60 calls per simulated minute, a minute lasting one second.
			sim := startSim(t, skilljarsim.Config{Seed: 8, Users: 200, PerMinute: 60, TimeScale: 60})
			redis := redistest.Start(t)
			limits := []ratelimit.Limit{{Count: 60 * tc.factor, Period: time.Second}}
			learners := sim.Org().Learners[:90]

			const processes, callersEach = 2, 4
			var wg sync.WaitGroup
			errs := make(chan error, len(learners))
			work := make(chan string)
			obs := &recorder{}
			for range processes {
				c := simClient(t, sim, skilljar.Config{Limiter: ratelimit.New(redis.Client(t), "skilljar", limits), Observer: obs})
				for range callersEach {
					wg.Go(func() {
						for id := range work {
							if _, err := c.UserProgress(context.Background(), id); err != nil {
								errs <- fmt.Errorf("user %s: %w", id, err)
							}
						}
					})
				}
			}
			for _, l := range learners {
				work <- l.ID
			}
			close(work)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			ok, throttled := 0, 0
			for _, st := range sim.Calls() {
				if st.Endpoint == "GET /v1/users/{id}/published-courses" {
					switch st.Status {
					case 200:
						ok += st.Count
					case 429:
						throttled += st.Count
					}
				}
			}
			if ok != len(learners) {
				t.Errorf("%d successful calls for %d learners", ok, len(learners))
			}
			if tc.factor > 1 && throttled == 0 {
				t.Errorf("a limiter at %dx the server's rate drew no 429s; the test proves nothing", tc.factor)
			}
			// A window's allowance goes out at once, so every caller may have a call in
			// flight when the first 429 lands; the shared pause keeps all of them from
			// trying again before the Retry-After.
			if throttled > processes*callersEach {
				t.Errorf("%d 429s for %d callers: a 429 did not hold the other callers", throttled, processes*callersEach)
			}
			if obs.waitedTotal() == 0 {
				t.Error("the observer saw no time spent waiting on the limiter")
			}
			t.Logf("%d calls answered, %d throttled", ok, throttled)
		})
	}
}

// recorder is an Observer that counts attempts per endpoint and adds up limiter waits.
type recorder struct {
	mu       sync.Mutex
	attempts []string
	waited   time.Duration
}

func (r *recorder) Call(endpoint string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, endpoint)
}

func (r *recorder) Waited(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited += d
}

func (r *recorder) waitedTotal() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waited
}

func (r *recorder) calls(endpoint string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.attempts {
		if e == endpoint {
			n++
		}
	}
	return n
}

func TestTheDomainListIsKeptForDomainsTTLAndAskedForAgainAfter(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Users: 5})
	now := clock.NewManual(time.Now())
	c := simClient(t, sim, skilljar.Config{DomainsTTL: time.Minute, Now: now.Now})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		d, err := c.Domains(ctx)
		if err != nil || len(d) != 3 || d[0].Name == "changed by the caller" {
			t.Fatalf("domains %v, %v: want the three domains, untouched by an earlier caller", d, err)
		}
		d[0].Name = "changed by the caller" // must not reach the cache
	}
	if n := sim.CallCount("GET /v1/domains"); n != 1 {
		t.Fatalf("%d calls for three asks within the TTL, want 1", n)
	}
	now.Advance(time.Minute - time.Millisecond)
	if _, err := c.Domains(ctx); err != nil || sim.CallCount("GET /v1/domains") != 1 {
		t.Fatalf("an ask just within the TTL: %v, %d calls, want the kept list", err, sim.CallCount("GET /v1/domains"))
	}
	now.Advance(time.Millisecond)
	if _, err := c.Domains(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.CallCount("GET /v1/domains"); n != 2 {
		t.Fatalf("%d calls after the TTL ran out, want 2", n)
	}
}
