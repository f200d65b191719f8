package salesforce_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestNewRejectsABadConfigNamingTheField(t *testing.T) {
	t.Parallel()
	tokens := salesforce.StaticTokens(salesforce.Credentials{AccessToken: "t", InstanceURL: "http://127.0.0.1"})
	for _, tc := range []struct {
		field string
		cfg   salesforce.Config
	}{
		{"APIVersion", salesforce.Config{Tokens: tokens, APIVersion: "v62.0"}},
		{"APIVersion", salesforce.Config{Tokens: tokens, APIVersion: "45.0"}},
		{"Tokens", salesforce.Config{}},
		{"MaxUsageFraction", salesforce.Config{Tokens: tokens, MaxUsageFraction: 1.5}},
		{"BackoffMax", salesforce.Config{Tokens: tokens, BackoffBase: time.Second, BackoffMax: time.Millisecond}},
		{"BulkPollMax", salesforce.Config{Tokens: tokens, BulkPollInterval: time.Minute}},
		{"RequestTimeout", salesforce.Config{Tokens: tokens, RequestTimeout: -time.Second}},
	} {
		_, err := salesforce.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v; want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := salesforce.New(salesforce.Config{Tokens: tokens}); err != nil {
		t.Errorf("the defaults must be valid: %v", err)
	}
}

// startFront puts a real HTTP server between the client and the simulator's instance that
// misbehaves on its first n requests, the way load balancers and networks do, then proxies
// faithfully. It returns the front's URL and its request counter.
func startFront(t *testing.T, sim *salesforcesim.Sim, n int64, misbehave func(w http.ResponseWriter, r *http.Request)) (string, *atomic.Int64) {
	t.Helper()
	target, _ := url.Parse(sim.InstanceURL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var hits atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= n {
			misbehave(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL, &hits
}

func html503(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte("<html>\n<head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1></body></html>"))
}

func dropConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// stall answers nothing until the client gives up. The server notices a hang-up only once
// the body is read, hence the drain.
func stall(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestTransientFailuresAreRetriedUntilTheCallSucceeds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		misbehave func(http.ResponseWriter, *http.Request)
		fault     *salesforcesim.Fault
	}{
		{name: "json 503", fault: &salesforcesim.Fault{PathContains: "composite/sobjects", Status: 503, ErrorCode: "SERVER_UNAVAILABLE", Times: 2}},
		{name: "502", fault: &salesforcesim.Fault{PathContains: "composite/sobjects", Status: 502, Times: 2}},
		{name: "concurrent request limit", fault: &salesforcesim.Fault{PathContains: "composite/sobjects", Status: 403,
			ErrorCode: "REQUEST_LIMIT_EXCEEDED", Message: "ConcurrentRequests (Concurrent API Requests) Limit exceeded.", Times: 2}},
		{name: "html 503", misbehave: html503},
		{name: "dropped connection", misbehave: dropConnection},
		{name: "timeout", misbehave: stall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, salesforcesim.Config{})
			tokens := newSimTokens(sim)
			hits := func() int64 { return int64(newCallsFor(sim, "PATCH composite/sobjects")) }
			if tc.fault != nil {
				sim.InjectFault(*tc.fault)
			} else {
				front, counter := startFront(t, sim, 2, tc.misbehave)
				tokens.through(front)
				hits = counter.Load
			}
			cfg := fastConfig(tokens, nil)
			cfg.RequestTimeout = 200 * time.Millisecond
			c := newClient(t, cfg)

			mustUpsert(t, c, course, courses("c", 2))
			if got := hits(); got != 3 {
				t.Errorf("%d requests; want 2 failures and 1 success", got)
			}
			if got := sim.Count(course); got != 2 {
				t.Errorf("org has %d courses; want 2", got)
			}
		})
	}
}

// newCallsFor counts the simulator's answers to one endpoint, whatever their status.
func newCallsFor(sim *salesforcesim.Sim, endpoint string) int {
	n := 0
	for _, c := range sim.Calls() {
		if c.Endpoint == endpoint {
			n += c.Count
		}
	}
	return n
}

func TestTransientFailuresThatOutlastRetriesAreErrUnavailable(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{})
	front, hits := startFront(t, sim, 100, html503)
	cfg := fastConfig(newSimTokens(sim).through(front), nil)
	cfg.MaxRetries = 2
	c := newClient(t, cfg)

	_, err := c.Upsert(context.Background(), course, extID, courses("c", 1))
	if !errors.Is(err, salesforce.ErrUnavailable) {
		t.Fatalf("err = %v; want ErrUnavailable", err)
	}
	apiErr, ok := errors.AsType[*salesforce.APIError](err)
	if !ok || apiErr.Status != 503 || !strings.Contains(apiErr.Message, "Service Unavailable") || strings.Contains(apiErr.Message, "\n") {
		t.Errorf("err = %#v; want a 503 APIError carrying a one-line excerpt of the HTML page", apiErr)
	}
	if got := hits.Load(); got != 3 {
		t.Errorf("%d requests; want 1 plus MaxRetries=2", got)
	}
}

func TestAnExpiredSessionIsRefreshedOnceAndTheCallRetried(t *testing.T) {
	t.Parallel()
	sim, c, calls, tokens := setup(t, salesforcesim.Config{})
	before, _ := tokens.Token(context.Background())
	sim.ExpireSessions()

	mustUpsert(t, c, course, courses("c", 1))
	if tokens.refreshes != 1 || tokens.stale[0] != before {
		t.Errorf("refreshes = %d with %v; want one refresh of the credentials that failed", tokens.refreshes, tokens.stale)
	}
	if calls.statuses[401] != 1 || calls.statuses[200] != 1 {
		t.Errorf("statuses = %v; want one 401 then one 200", calls.statuses)
	}
}

// rejectedTokens refreshes "successfully" into credentials Salesforce still refuses, as a
// store holding a revoked grant's leftovers would.
type rejectedTokens struct {
	creds     salesforce.Credentials
	refreshes atomic.Int64
}

func (r *rejectedTokens) Token(context.Context) (salesforce.Credentials, error) { return r.creds, nil }

func (r *rejectedTokens) Refresh(context.Context, salesforce.Credentials) (salesforce.Credentials, error) {
	r.refreshes.Add(1)
	return r.creds, nil
}

func TestLostAuthIsErrAuthAndTheTokenNeverShows(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{})
	tr := sim.MintTokens("api refresh_token")
	creds := salesforce.Credentials{AccessToken: tr.AccessToken, InstanceURL: tr.InstanceURL}
	sim.RevokeAll()

	t.Run("refresh impossible", func(t *testing.T) {
		calls := newCalls()
		c := newClient(t, fastConfig(salesforce.StaticTokens(creds), calls))
		_, err := c.Upsert(context.Background(), course, extID, courses("c", 1))
		if !errors.Is(err, salesforce.ErrAuth) {
			t.Fatalf("err = %v; want ErrAuth", err)
		}
		if strings.Contains(err.Error(), creds.AccessToken) {
			t.Errorf("the error shows the access token: %v", err)
		}
		if calls.statuses[401] != 1 {
			t.Errorf("statuses = %v; want exactly one 401", calls.statuses)
		}
	})
	t.Run("refreshed token refused too", func(t *testing.T) {
		calls := newCalls()
		tokens := &rejectedTokens{creds: creds}
		c := newClient(t, fastConfig(tokens, calls))
		err := c.Query(context.Background(), "SELECT Id FROM "+course, func(map[string]any) error { return nil })
		if !errors.Is(err, salesforce.ErrAuth) {
			t.Fatalf("err = %v; want ErrAuth", err)
		}
		if strings.Contains(err.Error(), creds.AccessToken) {
			t.Errorf("the error shows the access token: %v", err)
		}
		// The source had nothing newer than the refused token: no second, doomed try.
		if tokens.refreshes.Load() != 1 || calls.statuses[401] != 1 {
			t.Errorf("refreshes = %d, statuses = %v; want one refresh and one 401", tokens.refreshes.Load(), calls.statuses)
		}
	})
}

// tokenSequence hands out its credentials in order: the first from Token, the next from
// each Refresh.
type tokenSequence struct {
	mu    sync.Mutex
	creds []salesforce.Credentials
	next  int
}

func (s *tokenSequence) Token(context.Context) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds[0], nil
}

func (s *tokenSequence) Refresh(context.Context, salesforce.Credentials) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.creds[s.next], nil
}

// Under a short session lifetime, the token another process refreshed a while ago can
// itself have expired by the time this call gets it; the next refresh brings a good one.
func TestARefreshThatBringsAnExpiredTokenIsFollowedByAnother(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{})
	cred := func(tr salesforcesim.TokenResponse) salesforce.Credentials {
		return salesforce.Credentials{AccessToken: tr.AccessToken, InstanceURL: tr.InstanceURL}
	}
	old, stale := cred(sim.MintTokens("api refresh_token")), cred(sim.MintTokens("api refresh_token"))
	sim.ExpireSessions()
	tokens := &tokenSequence{creds: []salesforce.Credentials{old, stale, cred(sim.MintTokens("api refresh_token"))}}
	calls := newCalls()
	c := newClient(t, fastConfig(tokens, calls))
	if err := c.Query(context.Background(), "SELECT Id FROM "+course, func(map[string]any) error { return nil }); err != nil {
		t.Fatalf("query after two refreshes: %v", err)
	}
	if tokens.next != 2 || calls.statuses[401] != 2 {
		t.Fatalf("refreshes = %d, statuses = %v; want two refreshes, two 401s, then success", tokens.next, calls.statuses)
	}
}

func TestTheDailyLimitIsErrLimitExceededAndIsNotRetried(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{DailyLimit: 2})
	calls := newCalls()
	cfg := fastConfig(newSimTokens(sim), calls)
	cfg.MaxUsageFraction = -1 // the guard would stop us before the org does
	c := newClient(t, cfg)
	ctx := context.Background()

	for range 2 {
		if _, err := c.Limits(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Upsert(ctx, course, extID, courses("c", 1))
	if !errors.Is(err, salesforce.ErrLimitExceeded) {
		t.Fatalf("err = %v; want ErrLimitExceeded", err)
	}
	if errors.Is(err, salesforce.ErrUnavailable) {
		t.Error("the daily limit must not be classified as transient")
	}
	if calls.statuses[403] != 1 {
		t.Errorf("statuses = %v; the 403 must not be retried", calls.statuses)
	}
}

func TestTheBudgetGuardRefusesNewWorkOnceUsageCrossesItsShare(t *testing.T) {
	t.Parallel()
	sim := startSim(t, salesforcesim.Config{DailyLimit: 10})
	calls := newCalls()
	cfg := fastConfig(newSimTokens(sim), calls)
	cfg.MaxUsageFraction = 0.5
	c := newClient(t, cfg)
	ctx := context.Background()

	if _, _, ok := c.Usage(); ok {
		t.Error("Usage reports ok before any response")
	}
	for i := range 5 {
		if _, err := c.Limits(ctx); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	_, err := c.Upsert(ctx, course, extID, courses("c", 1))
	if !errors.Is(err, salesforce.ErrBudgetExhausted) {
		t.Fatalf("err = %v; want ErrBudgetExhausted at 5/10 with a 0.5 share", err)
	}
	if used, _ := sim.APIUsage(); used != 5 {
		t.Errorf("org usage = %d; the refused call must not reach Salesforce", used)
	}
	if used, max, ok := c.Usage(); used != 5 || max != 10 || !ok {
		t.Errorf("Usage() = %d, %d, %v; want 5, 10, true", used, max, ok)
	}
	if calls.used != 5 || calls.max != 10 {
		t.Errorf("observer saw usage %d/%d; want 5/10", calls.used, calls.max)
	}
}

func TestLimitsReportsTheDailyAllocation(t *testing.T) {
	t.Parallel()
	_, c, _, _ := setup(t, salesforcesim.Config{DailyLimit: 15000})
	limits, err := c.Limits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := limits["DailyApiRequests"]
	if got.Max != 15000 || got.Remaining <= 0 || got.Remaining >= 15000 {
		t.Errorf("DailyApiRequests = %+v; want Max 15000 and Remaining below it (this call spent one)", got)
	}
}

func TestCredentialsWithoutAUsableInstanceURLAreErrAuth(t *testing.T) {
	t.Parallel()
	for _, instance := range []string{"", "my.salesforce.com", "ftp://x"} {
		c := newClient(t, fastConfig(salesforce.StaticTokens(salesforce.Credentials{AccessToken: "t", InstanceURL: instance}), nil))
		if _, err := c.Limits(context.Background()); !errors.Is(err, salesforce.ErrAuth) {
			t.Errorf("instance URL %q: err = %v; want ErrAuth", instance, err)
		}
	}
}
