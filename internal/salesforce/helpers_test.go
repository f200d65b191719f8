package salesforce_test

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

const (
	student  = "skilljar__Student__c"
	course   = "skilljar__Course__c"
	progress = "skilljar__Course_Progress__c"
	extID    = salesforcesim.ObfuscatedID
)

// startSim runs a simulated org on loopback ports for one test.
func startSim(t testing.TB, cfg salesforcesim.Config) *salesforcesim.Sim {
	t.Helper()
	sim, err := salesforcesim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// simTokens is a TokenSource backed by the simulator: Refresh mints a fresh grant, as the
// rotation-safe store will by refreshing.
type simTokens struct {
	sim *salesforcesim.Sim
	// front, when set, replaces the instance URL, to route calls through a test proxy.
	front string

	mu        sync.Mutex
	creds     salesforce.Credentials
	refreshes int
	stale     []salesforce.Credentials
}

func newSimTokens(sim *salesforcesim.Sim) *simTokens {
	s := &simTokens{sim: sim}
	s.creds = s.mint()
	return s
}

// through sends every later call through front instead of the simulator's instance.
func (s *simTokens) through(front string) *simTokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.front = front
	s.creds.InstanceURL = front
	return s
}

func (s *simTokens) mint() salesforce.Credentials {
	tr := s.sim.MintTokens("api refresh_token")
	return salesforce.Credentials{AccessToken: tr.AccessToken, InstanceURL: cmp.Or(s.front, tr.InstanceURL)}
}

func (s *simTokens) Token(context.Context) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds, nil
}

func (s *simTokens) Refresh(_ context.Context, stale salesforce.Credentials) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	s.stale = append(s.stale, stale)
	s.creds = s.mint()
	return s.creds, nil
}

// calls counts HTTP attempts by endpoint label, through the client's Observer hook.
type calls struct {
	mu       sync.Mutex
	byLabel  map[string]int
	statuses map[int]int
	used     int
	max      int
}

func newCalls() *calls { return &calls{byLabel: map[string]int{}, statuses: map[int]int{}} }

func (c *calls) ObserveCall(endpoint string, status int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byLabel[endpoint]++
	c.statuses[status]++
}

func (c *calls) ObserveUsage(used, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used, c.max = used, max
}

func (c *calls) count(label string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byLabel[label]
}

func (c *calls) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.byLabel {
		n += v
	}
	return n
}

// fastConfig is a Config whose waits are short enough for tests.
func fastConfig(tokens salesforce.TokenSource, obs salesforce.Observer) salesforce.Config {
	return salesforce.Config{
		Tokens:           tokens,
		Observer:         obs,
		BackoffBase:      time.Millisecond,
		BackoffMax:       5 * time.Millisecond,
		BulkPollInterval: 5 * time.Millisecond,
		BulkPollMax:      20 * time.Millisecond,
		RequestTimeout:   10 * time.Second,
	}
}

func newClient(t testing.TB, cfg salesforce.Config) *salesforce.Client {
	t.Helper()
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// setup is the common case: a simulator with the given config and a client on it.
func setup(t testing.TB, simCfg salesforcesim.Config) (*salesforcesim.Sim, *salesforce.Client, *calls, *simTokens) {
	t.Helper()
	sim := startSim(t, simCfg)
	tokens := newSimTokens(sim)
	obs := newCalls()
	return sim, newClient(t, fastConfig(tokens, obs)), obs, tokens
}

// courses builds n course rows with external ids prefix-0 … prefix-(n-1).
func courses(prefix string, n int) []salesforce.Record {
	recs := make([]salesforce.Record, n)
	for i := range recs {
		recs[i] = salesforce.Record{extID: fmt.Sprintf("%s-%d", prefix, i), "skilljar__Title__c": fmt.Sprintf("Course %d", i)}
	}
	return recs
}

func mustUpsert(t testing.TB, c *salesforce.Client, sobject string, recs []salesforce.Record) []salesforce.Result {
	t.Helper()
	res, err := c.Upsert(context.Background(), sobject, extID, recs)
	if err != nil {
		t.Fatalf("Upsert %s: %v", sobject, err)
	}
	for i, r := range res {
		if !r.Success {
			t.Fatalf("Upsert %s record %d (%s) failed: %+v", sobject, i, r.ExternalID, r.Errors)
		}
	}
	return res
}

func errorCode(r salesforce.Result) string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].StatusCode
}
