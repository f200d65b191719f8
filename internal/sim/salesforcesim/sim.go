// Package salesforcesim simulates the Salesforce login host (OAuth web-server flow with PKCE
// and refresh-token rotation) and an org's instance (REST data API, SOQL and Bulk API 2.0
// ingest) over real HTTP, with inspectable state and injectable faults, as the test ground
// for the engine's Salesforce side.
package salesforcesim

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config shapes one simulated org. The zero value is a working org with the default schema.
type Config struct {
	// ClientID and ClientSecret identify the one connected app. Defaults to "sim-client-id"
	// and a random secret.
	ClientID, ClientSecret string
	// RedirectURIs are the app's allowed callback URLs. Empty accepts any http(s) URL.
	RedirectURIs []string
	// SessionTTL is an access token's lifetime. Defaults to 2h; <0 never expires.
	SessionTTL time.Duration
	// Now is the clock of tokens, codes and record dates, so tests move past a lifetime
	// instead of waiting it out. Defaults to time.Now.
	Now func() time.Time
	// CodeTTL is how long an authorization code can be exchanged. Defaults to 15m
	// (UNCONFIRMED: Salesforce documents a short lifetime, not a number).
	CodeTTL time.Duration
	// DisableRotation turns refresh-token rotation off; it is on by default, as partner apps
	// must enable it.
	DisableRotation bool
	// DailyLimit is the DailyApiRequests maximum. Defaults to 100,000.
	DailyLimit int
	// Latency delays every request, plus a uniformly random extra of up to Jitter.
	Latency, Jitter time.Duration
	// FaultRate is the probability that a data API call answers 503.
	FaultRate float64
	// LockRate is the probability per written record of an UNABLE_TO_LOCK_ROW error.
	LockRate float64
	// BulkBatchDelay is the processing time of each internal 10,000-record bulk batch.
	BulkBatchDelay time.Duration
	// BulkMultipleUploads lets a bulk job take several PUT uploads before UploadComplete.
	// Off by default: whether Salesforce allows it is UNCONFIRMED, so the engine should
	// upload once per job.
	BulkMultipleUploads bool
	// Schema is the org's objects. Defaults to DefaultSchema().
	Schema []SObject
	// OrgID, UserID and Username name the integration user. Default to fixed fake ids.
	OrgID, UserID, Username string
	// Seed drives FaultRate, LockRate and Jitter so a run can be repeated. Defaults to 1.
	Seed uint64

	// Profiles reshape the org as real ones are (ProfileMasterDetail, …; see profiles.go).
	// None is the default org.
	Profiles []string
	// CPULimitRecords fails every record of a request, or of a bulk trigger chunk, of more
	// records than this on the objects customer triggers run on. ProfileAutomation defaults
	// it to 120; 0 is off.
	CPULimitRecords int
	// LockWindow is how long a writing transaction holds the locks of its master-detail
	// parents. ProfileLocks defaults it to 200ms; 0 is off.
	LockWindow time.Duration
	// ConcurrentLimit refuses a data API request, with REQUEST_LIMIT_EXCEEDED, while this
	// many are in flight for longer than LongRunning. ProfileDeveloperEdition sets 5; 0 is
	// off. LongRunning is 20 s on the platform (reference/salesforce.md §4.2); it defaults
	// to 0 here, where requests take milliseconds, so every request in flight counts.
	ConcurrentLimit int
	LongRunning     time.Duration
	// RefreshIdle expires a refresh token not used for this long: partner apps' tokens
	// since May 2026 after 30 days (reference/salesforce.md §8.9). 0 never expires them.
	RefreshIdle time.Duration
}

const (
	defaultClientID   = "sim-client-id"
	defaultSessionTTL = 2 * time.Hour
	defaultCodeTTL    = 15 * time.Minute
	defaultDailyLimit = 100000
)

func (c Config) withDefaults() Config {
	c.ClientID = cmp.Or(c.ClientID, defaultClientID)
	if c.ClientSecret == "" {
		c.ClientSecret = randomToken(16)
	}
	c.SessionTTL = cmp.Or(c.SessionTTL, defaultSessionTTL)
	if c.Now == nil {
		c.Now = time.Now
	}
	c.CodeTTL = cmp.Or(c.CodeTTL, defaultCodeTTL)
	c.DailyLimit = cmp.Or(c.DailyLimit, defaultDailyLimit)
	if c.Schema == nil {
		c.Schema = DefaultSchema()
	}
	c.OrgID = cmp.Or(c.OrgID, newID("00D", 42))
	c.UserID = cmp.Or(c.UserID, newID("005", 7))
	c.Username = cmp.Or(c.Username, "integration@sim.example.com")
	c.Seed = cmp.Or(c.Seed, 1)
	return applyProfiles(c)
}

// Sim is one simulated org: its login host, its instance and all their state. All methods
// are safe for concurrent use.
type Sim struct {
	cfg Config

	mu      sync.Mutex
	rng     *mrand.Rand
	tables  map[string]*table // by lower-case object name
	auth    authState
	usage   int
	batches int // internal bulk batches, for DailyBulkApiBatches
	calls   map[callKey]int
	faults  []*Fault
	recErr  map[recordKey]*recordFault
	writes  []logEntry
	cursors []*cursor
	jobs    map[string]*bulkJob
	jobSeq  uint64
	seq     uint64 // numbers query locators and transactions

	// The org profiles' state.
	locks    map[string]lockHold  // parent Id → the transaction holding it (ProfileLocks)
	inflight map[uint64]time.Time // data API requests in flight, by start (ConcurrentLimit)
	raced    int                  // Contact queries the other writer of ProfileDirty saw

	loginURL, instanceURL string
	servers               []*http.Server
	ctx                   context.Context // cancelled by Close; bulk processing watches it
	cancel                context.CancelFunc
	bulkWG                sync.WaitGroup
}

// New builds a simulated org that serves nothing until Serve. It panics on an invalid
// Config.Schema, a programming error in the test that wrote it; Start returns it instead.
func New(cfg Config) *Sim {
	if _, err := ParseProfiles(strings.Join(cfg.Profiles, ",")); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if err := validateSchema(cfg.Schema); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		cfg:    cfg,
		rng:    mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x5f)),
		tables: make(map[string]*table),
		calls:  make(map[callKey]int),
		recErr: make(map[recordKey]*recordFault),
		jobs:   make(map[string]*bulkJob),
		ctx:    ctx,
		cancel: cancel,
	}
	s.locks, s.inflight = make(map[string]lockHold), make(map[uint64]time.Time)
	s.auth.init()
	for _, obj := range cfg.Schema {
		// A private copy, so SetFieldAccess never reaches into the caller's Config.
		obj.Fields = slices.Clone(obj.Fields)
		s.tables[strings.ToLower(obj.Name)] = newTable(&obj)
	}
	return s
}

// Start builds a simulated org and serves its login host on loginAddr ("127.0.0.1:0" picks a
// free port) and its instance on a listener of its own, so that data calls sent to the login
// host, or OAuth calls sent to the instance, get 404 as they would in a real org.
func Start(cfg Config, loginAddr string) (*Sim, error) {
	if _, err := ParseProfiles(strings.Join(cfg.Profiles, ",")); err != nil {
		return nil, err
	}
	if cfg.Schema != nil {
		if err := validateSchema(cfg.Schema); err != nil {
			return nil, err
		}
	}
	login, err := net.Listen("tcp", loginAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on login address %s: %w", loginAddr, err)
	}
	instance, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		login.Close()
		return nil, fmt.Errorf("listen for the instance: %w", err)
	}
	s := New(cfg)
	s.Serve(login, instance)
	return s, nil
}

// Serve serves the login host and the instance on the given listeners until Close.
func (s *Sim) Serve(login, instance net.Listener) {
	s.mu.Lock()
	s.loginURL = "http://" + login.Addr().String()
	s.instanceURL = "http://" + instance.Addr().String()
	s.mu.Unlock()
	for _, p := range []struct {
		ln net.Listener
		h  http.Handler
	}{{login, s.loginHandler()}, {instance, s.instanceHandler()}} {
		srv := &http.Server{Handler: p.h, ReadHeaderTimeout: 10 * time.Second}
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.mu.Unlock()
		go srv.Serve(p.ln) //nolint:errcheck // Serve always returns ErrServerClosed after Close.
	}
}

// LoginURL is the login host's base URL, where authorize, token, revoke and id live.
func (s *Sim) LoginURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loginURL
}

// InstanceURL is the org's instance base URL, returned as instance_url.
func (s *Sim) InstanceURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instanceURL
}

// ClientID is the connected app's consumer key.
func (s *Sim) ClientID() string { return s.cfg.ClientID }

// ClientSecret is the connected app's consumer secret.
func (s *Sim) ClientSecret() string { return s.cfg.ClientSecret }

// Close stops both hosts and any bulk job still processing.
func (s *Sim) Close() error {
	s.cancel()
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, srv.Close())
		}
		cancel()
	}
	s.bulkWG.Wait()
	return errors.Join(errs...)
}

func (s *Sim) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// nextSeq hands out the shared sequence number; the caller holds s.mu.
func (s *Sim) nextSeq() uint64 {
	s.seq++
	return s.seq
}

// chance draws a Bernoulli sample; the caller holds s.mu.
func (s *Sim) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// CallStat counts requests by endpoint and answered status.
type CallStat struct {
	Endpoint string // e.g. "PATCH composite/sobjects", "POST oauth2/token"
	Status   int
	Count    int
}

type callKey struct {
	endpoint string
	status   int
}

// Calls lists every request either host answered, by endpoint and status, sorted.
func (s *Sim) Calls() []CallStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CallStat, 0, len(s.calls))
	for k, n := range s.calls {
		out = append(out, CallStat{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	slices.SortFunc(out, func(a, b CallStat) int {
		return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// APIUsage reports the DailyApiRequests counter and its maximum.
func (s *Sim) APIUsage() (used, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage, s.cfg.DailyLimit
}

// Fault makes the next Times requests whose path contains PathContains fail with Status and
// an error body carrying ErrorCode. Times <= 0 means once.
type Fault struct {
	PathContains string
	Status       int
	ErrorCode    string
	Message      string // defaults to a generic text for the status
	Times        int
}

// InjectFault queues a deterministic failure; faults are consumed in the order injected.
func (s *Sim) InjectFault(f Fault) {
	f.Times = max(f.Times, 1)
	f.Message = cmp.Or(f.Message, http.StatusText(f.Status))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// takeFault consumes the first injected fault matching path; the caller holds s.mu.
func (s *Sim) takeFault(path string) *Fault {
	for i, f := range s.faults {
		if !strings.Contains(path, f.PathContains) {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return f
	}
	return nil
}

type recordKey struct{ sobject, externalID string }

type recordFault struct {
	code  string
	times int
}

// InjectRecordError makes the next times writes of the record with that external id fail
// with statusCode (e.g. UNABLE_TO_LOCK_ROW), in collections, single upserts and bulk jobs.
func (s *Sim) InjectRecordError(sobject, externalID, statusCode string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recErr[recordKey{strings.ToLower(sobject), strings.ToLower(externalID)}] = &recordFault{statusCode, max(times, 1)}
}
