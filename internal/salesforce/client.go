// Package salesforce is the sink client: sObject Collections and Bulk API 2.0 upserts by
// external id, SOQL queries, describe and limits, with retries and errors classified once.
package salesforce

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Observer receives metrics hooks. Implementations must be safe for concurrent use and
// must not block: they run on the request path.
type Observer interface {
	// ObserveCall reports one HTTP attempt: a stable endpoint label (describe,
	// collections_upsert, collections_create, query, limits, bulk_create, bulk_upload,
	// bulk_close, bulk_poll, bulk_results, bulk_abort, bulk_delete), the HTTP status (0 when
	// no response arrived) and how long the attempt took.
	ObserveCall(endpoint string, status int, d time.Duration)
	// ObserveUsage reports the org's daily API usage from the last Sforce-Limit-Info header.
	ObserveUsage(used, max int)
}

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// APIVersion is the REST version in paths, "NN.N". Collections upsert needs 46.0 or
	// later. Defaults to "62.0".
	APIVersion string

	// Tokens supplies credentials and refreshes them after a 401. Required.
	Tokens TokenSource

	// HTTPClient sends the requests. Defaults to a client with no overall timeout; each
	// attempt is bounded by RequestTimeout instead.
	HTTPClient *http.Client

	// RequestTimeout bounds one HTTP attempt, body included. Defaults to 2 minutes: a
	// 200-record upsert with triggers can take tens of seconds.
	RequestTimeout time.Duration

	// MaxRetries is how many times a transient failure (500, 502, 503, the concurrent-request
	// limit, timeouts, network errors) is retried, with exponential backoff and jitter.
	// Calls that are not idempotent (Create) retry only failures Salesforce answered before
	// processing; see mayRepeat. Defaults to 5; a negative value disables retries.
	MaxRetries int

	// LockRetries is how many rounds records that failed with UNABLE_TO_LOCK_ROW are sent
	// again, only they, through collections and after LockBackoff, before they are reported
	// as failed. Defaults to 4; a negative value disables lock retries.
	LockRetries int

	// BackoffBase is the first retry's delay; each later one doubles, up to BackoffMax.
	// Defaults to 500ms and 30s.
	BackoffBase, BackoffMax time.Duration

	// BulkPollInterval is the first wait between Bulk API job polls; it grows by half each
	// poll up to BulkPollMax. Every poll is an API call. Defaults to 500ms and 10s.
	BulkPollInterval, BulkPollMax time.Duration

	// BulkTimeout bounds how long a Bulk API job may take from upload to a final state;
	// past it the job is aborted. Defaults to 30 minutes.
	BulkTimeout time.Duration

	// MaxUsageFraction is the share of the org's daily API allocation this client may see
	// used (by anyone, per Sforce-Limit-Info) before it refuses new work with
	// ErrBudgetExhausted. Defaults to 0.9; a negative value disables the guard.
	MaxUsageFraction float64

	// Observer receives metrics hooks. Optional.
	Observer Observer

	// MaxConcurrency is how many requests the client has in flight at once, across every
	// call sharing it; Upsert and BulkUpsert send their chunks and jobs in parallel up to
	// it. The org allows 25 long-running (20 s or more) requests at once, 5 on Developer
	// Edition (reference/salesforce.md §4.2, §8.6), shared by all its integrations: when it
	// refuses one with REQUEST_LIMIT_EXCEEDED ConcurrentRequests, the client halves its own
	// limit (not below 1) and retries, and wins a slot back after 200 answered requests in a
	// row. Defaults to 4.
	MaxConcurrency int

	// ConcurrencyRetries is how many concurrent-request refusals one request outlasts;
	// they do not count against MaxRetries, since each lowers the limit that caused them.
	// Defaults to 20.
	ConcurrencyRetries int

	// LockBackoff is the first wait before records that failed with UNABLE_TO_LOCK_ROW are
	// sent again; each later round doubles it, with jitter, up to BackoffMax. Salesforce lets
	// a transaction wait 10 s for a lock (§4.2), so the holder is usually done within a few
	// seconds. Defaults to 1s.
	LockBackoff time.Duration

	// LockSerialThreshold is the share of one call's records failing UNABLE_TO_LOCK_ROW on
	// their first try (with at least 5 of them) from which the object is written serially
	// for the rest of the client's life: one collections call or Bulk API job at a time, jobs
	// of at most SerialJobRows. Bulk API 2.0 has no serial concurrency mode to ask for (a
	// job's concurrencyMode is reported, never set, §3.1; only Bulk API 1.0 jobs take
	// "Serial"), so smaller sequential jobs are its equivalent, and locked rows always go
	// again through collections. Defaults to 0.05; a negative value never switches.
	LockSerialThreshold float64

	// SerialJobRows caps a Bulk API job once its object is written serially. Salesforce
	// cuts a job into internal batches it processes in parallel; a job of one batch is
	// processed serially. 10,000 rows per internal batch is the figure the simulator uses
	// ([UNCONFIRMED] in our sources), hence configurable. Defaults to 10,000.
	SerialJobRows int

	// SplitOn marks a request or Bulk API job that failed as a whole because of its size,
	// not because of one record: an error code or message containing any of these
	// (case-insensitively) makes the client split the records in halves until the failing
	// ones are isolated (reference/salesforce.md §8.4: "a chunk that exhausts the Apex CPU
	// limit fails every record of the request. Smaller chunks are the standard remedy").
	// The exact codes and texts real orgs send are [UNCONFIRMED], hence configurable.
	// Defaults to APEX_ERROR and "Apex CPU time limit exceeded".
	SplitOn []string

	// CreateOnlyCodes are the per-record error codes with which Salesforce refuses to
	// update a field that may only be set on create (a master-detail relationship without
	// "Allow reparenting", §8.1). A record refused so, whose error names one of its object's
	// create-only fields (SetCreateOnly), is sent once more without them. Defaults to
	// INVALID_FIELD_FOR_INSERT_UPDATE ("Unable to create/update fields: …") and
	// FIELD_INTEGRITY_EXCEPTION ([UNCONFIRMED] which of the two real orgs send).
	CreateOnlyCodes []string

	// CreateOnly seeds SetCreateOnly: sObject → create-only field API names.
	CreateOnly map[string][]string

	// DisableAdaptation turns off the write-time handling, for comparison in benchmarks:
	// no splitting (every record of a call that failed as a whole fails with it), no lock
	// retries, no grouping by parent, no serial switch, no lowering of MaxConcurrency, and
	// chunks sent one after the other.
	DisableAdaptation bool

	// OnAdapt is told of every Adaptation the client makes, with the context of the call
	// that caused it, for the activity log. It must be safe for concurrent use and quick.
	OnAdapt func(ctx context.Context, a Adaptation)
}

// Defaults for Config's zero values.
const (
	DefaultAPIVersion          = "62.0"
	DefaultRequestTimeout      = 2 * time.Minute
	DefaultMaxRetries          = 5
	DefaultLockRetries         = 4
	DefaultBackoffBase         = 500 * time.Millisecond
	DefaultBackoffMax          = 30 * time.Second
	DefaultBulkPollInterval    = 500 * time.Millisecond
	DefaultBulkPollMax         = 10 * time.Second
	DefaultBulkTimeout         = 30 * time.Minute
	DefaultMaxUsageFraction    = 0.9
	DefaultMaxConcurrency      = 4
	DefaultConcurrencyRetries  = 20
	DefaultLockBackoff         = time.Second
	DefaultLockSerialThreshold = 0.05
	DefaultSerialJobRows       = 10000
)

// Defaults for Config's list fields.
var (
	DefaultSplitOn         = []string{"APEX_ERROR", "Apex CPU time limit exceeded"}
	DefaultCreateOnlyCodes = []string{"INVALID_FIELD_FOR_INSERT_UPDATE", "FIELD_INTEGRITY_EXCEPTION"}
)

// minAPIVersion is the first version with sObject Collections upsert.
const minAPIVersion = 46.0

var apiVersionPattern = regexp.MustCompile(`^\d{2,3}\.\d$`)

func (c Config) withDefaults() Config {
	c.APIVersion = cmp.Or(c.APIVersion, DefaultAPIVersion)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxRetries = orDefaultCount(c.MaxRetries, DefaultMaxRetries)
	c.LockRetries = orDefaultCount(c.LockRetries, DefaultLockRetries)
	c.BackoffBase = cmp.Or(c.BackoffBase, DefaultBackoffBase)
	c.BackoffMax = cmp.Or(c.BackoffMax, DefaultBackoffMax)
	c.BulkPollInterval = cmp.Or(c.BulkPollInterval, DefaultBulkPollInterval)
	c.BulkPollMax = cmp.Or(c.BulkPollMax, DefaultBulkPollMax)
	c.BulkTimeout = cmp.Or(c.BulkTimeout, DefaultBulkTimeout)
	c.MaxConcurrency = cmp.Or(c.MaxConcurrency, DefaultMaxConcurrency)
	c.ConcurrencyRetries = orDefaultCount(c.ConcurrencyRetries, DefaultConcurrencyRetries)
	c.LockBackoff = cmp.Or(c.LockBackoff, DefaultLockBackoff)
	c.SerialJobRows = cmp.Or(c.SerialJobRows, DefaultSerialJobRows)
	if c.SplitOn == nil {
		c.SplitOn = DefaultSplitOn
	}
	if c.CreateOnlyCodes == nil {
		c.CreateOnlyCodes = DefaultCreateOnlyCodes
	}
	switch {
	case c.LockSerialThreshold == 0:
		c.LockSerialThreshold = DefaultLockSerialThreshold
	case c.LockSerialThreshold < 0:
		c.LockSerialThreshold = 0
	}
	switch {
	case c.MaxUsageFraction == 0:
		c.MaxUsageFraction = DefaultMaxUsageFraction
	case c.MaxUsageFraction < 0:
		c.MaxUsageFraction = 0
	}
	return c
}

// orDefaultCount lets zero mean "default" while a negative value still means "none".
func orDefaultCount(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}

func (c Config) validate() error {
	if !apiVersionPattern.MatchString(c.APIVersion) {
		return fmt.Errorf("salesforce: APIVersion %q must look like \"62.0\" (no leading v)", c.APIVersion)
	}
	if v, _ := strconv.ParseFloat(c.APIVersion, 64); v < minAPIVersion {
		return fmt.Errorf("salesforce: APIVersion %s is too old: collections upsert needs %.1f or later", c.APIVersion, minAPIVersion)
	}
	if c.Tokens == nil {
		return errors.New("salesforce: Tokens is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout}, {"BackoffBase", c.BackoffBase}, {"BackoffMax", c.BackoffMax},
		{"BulkPollInterval", c.BulkPollInterval}, {"BulkPollMax", c.BulkPollMax}, {"BulkTimeout", c.BulkTimeout},
		{"LockBackoff", c.LockBackoff},
	} {
		if d.v < 0 {
			return fmt.Errorf("salesforce: %s must not be negative, got %s", d.name, d.v)
		}
	}
	if c.BackoffMax < c.BackoffBase {
		return fmt.Errorf("salesforce: BackoffMax (%s) must be at least BackoffBase (%s)", c.BackoffMax, c.BackoffBase)
	}
	if c.BulkPollMax < c.BulkPollInterval {
		return fmt.Errorf("salesforce: BulkPollMax (%s) must be at least BulkPollInterval (%s)", c.BulkPollMax, c.BulkPollInterval)
	}
	if c.MaxConcurrency < 1 {
		return fmt.Errorf("salesforce: MaxConcurrency must be at least 1, got %d", c.MaxConcurrency)
	}
	if c.SerialJobRows < 1 {
		return fmt.Errorf("salesforce: SerialJobRows must be at least 1, got %d", c.SerialJobRows)
	}
	if c.LockSerialThreshold > 1 {
		return fmt.Errorf("salesforce: LockSerialThreshold %g must be at most 1 (a share of a call's records)", c.LockSerialThreshold)
	}
	for sobject, fields := range c.CreateOnly {
		for _, f := range append([]string{sobject}, fields...) {
			if !apiNamePattern.MatchString(f) {
				return fmt.Errorf("salesforce: CreateOnly: %q is not an API name", f)
			}
		}
	}
	if c.MaxUsageFraction > 1 {
		return fmt.Errorf("salesforce: MaxUsageFraction %g must be at most 1 (a share of the daily allocation)", c.MaxUsageFraction)
	}
	return nil
}

// Client talks to one org's data API. It is safe for concurrent use.
type Client struct {
	cfg Config

	gate *gate

	mu        sync.Mutex
	used, max int
	usageSeen bool
	objects   map[string]*objectState // by lower-case sObject name
}

// New validates cfg, fills its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, gate: newGate(cfg.MaxConcurrency), objects: map[string]*objectState{}}
	for sobject, fields := range cfg.CreateOnly {
		c.SetCreateOnly(sobject, fields...)
	}
	return c, nil
}

// Concurrency is the number of requests the client lets be in flight now: MaxConcurrency,
// or less after the org refused requests for concurrency.
func (c *Client) Concurrency() int { return c.gate.current() }

// Usage returns the org's daily API usage from the last Sforce-Limit-Info header seen;
// ok is false until a response carried one.
func (c *Client) Usage() (used, max int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.max, c.usageSeen
}

var limitInfoPattern = regexp.MustCompile(`api-usage=(\d+)/(\d+)`)

func (c *Client) recordUsage(h http.Header) {
	m := limitInfoPattern.FindStringSubmatch(h.Get("Sforce-Limit-Info"))
	if m == nil {
		return
	}
	used, err1 := strconv.Atoi(m[1])
	max, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return
	}
	c.mu.Lock()
	c.used, c.max, c.usageSeen = used, max, true
	c.mu.Unlock()
	if c.cfg.Observer != nil {
		c.cfg.Observer.ObserveUsage(used, max)
	}
}

func (c *Client) checkBudget() error {
	if c.cfg.MaxUsageFraction == 0 {
		return nil
	}
	used, max, ok := c.Usage()
	if !ok || max == 0 {
		return nil
	}
	if float64(used) >= c.cfg.MaxUsageFraction*float64(max) {
		return fmt.Errorf("%w: org has used %d of %d daily API requests, the guard is %.0f%%",
			ErrBudgetExhausted, used, max, c.cfg.MaxUsageFraction*100)
	}
	return nil
}

// request is one logical API call; do turns it into as many HTTP attempts as it takes.
type request struct {
	method   string
	endpoint string // metric label
	// path is relative to /services/data/vNN.N/ unless it starts with "/", as the
	// nextRecordsUrl Salesforce returns does.
	path        string
	query       string // already encoded
	body        []byte
	contentType string
	accept      string
	// finishing marks calls that complete work already started (a bulk job after its
	// creation): the budget guard lets them through, because abandoning an accepted job
	// wastes the calls spent on it and leaves the rows in an unknown state.
	finishing bool
	// notIdempotent marks calls that change more each time they are applied (an insert):
	// do retries them only when mayRepeat says the failed attempt changed nothing.
	notIdempotent bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// maxRefreshes bounds the refreshes one call may ask for. The first may hand back a token
// another process refreshed a while ago, which can itself have expired by now under a short
// session lifetime; the source then refreshes for real on the second.
const maxRefreshes = 3

// do sends r with credentials from the token source: a 401 gets a refresh and another try
// (a few times, while each refresh brings new credentials); transient failures get
// MaxRetries more tries with backoff; everything else is returned as classified by APIError.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	if !r.finishing {
		if err := c.checkBudget(); err != nil {
			return nil, err
		}
	}
	creds, err := c.cfg.Tokens.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("salesforce: getting credentials: %w", err)
	}
	if err := checkInstanceURL(creds); err != nil {
		return nil, err
	}
	refreshes, refusals := 0, 0
	for attempt := 0; ; {
		resp, err := c.send(ctx, creds, r)
		if err == nil {
			return resp, nil
		}
		if c.splittable(err) {
			// The same records would exhaust the same limit again: only smaller calls help.
			return nil, err
		}
		if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.concurrencyLimit() &&
			!c.cfg.DisableAdaptation && refusals < c.cfg.ConcurrencyRetries && ctx.Err() == nil {
			// send has lowered the limit; the retry waits for a slot under the new one.
			if err := sleep(ctx, c.backoff(min(refusals, 3))); err != nil {
				return nil, err
			}
			refusals++
			continue
		}
		if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.Status == http.StatusUnauthorized {
			if refreshes == maxRefreshes {
				return nil, err
			}
			refreshes++
			stale := creds
			if creds, err = c.cfg.Tokens.Refresh(ctx, stale); err != nil {
				return nil, fmt.Errorf("%w: refreshing credentials after %s %s: %w", ErrAuth, r.method, r.path, err)
			}
			if creds.AccessToken == stale.AccessToken {
				// The source has nothing newer: another try would only be refused again.
				return nil, apiErr
			}
			if err := checkInstanceURL(creds); err != nil {
				return nil, err
			}
			continue
		}
		if !retryable(ctx, err) {
			return nil, err
		}
		if r.notIdempotent && !mayRepeat(err) {
			return nil, fmt.Errorf("%w: not retried, because Salesforce may have applied it: %w", ErrUnavailable, err)
		}
		if attempt >= c.cfg.MaxRetries {
			if errors.Is(err, ErrUnavailable) {
				return nil, fmt.Errorf("salesforce: gave up after %d attempts: %w", attempt+1, err)
			}
			return nil, fmt.Errorf("%w: gave up after %d attempts: %w", ErrUnavailable, attempt+1, err)
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, err
		}
		attempt++
	}
}

// checkInstanceURL refuses credentials no request can be built from, before any retry
// loop spins on them. Only a new grant brings a usable instance_url, hence ErrAuth.
func checkInstanceURL(creds Credentials) error {
	u, err := url.Parse(creds.InstanceURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: the token source gave instance URL %q; want an absolute http(s) URL", ErrAuth, creds.InstanceURL)
	}
	return nil
}

// retryable says whether another attempt may succeed. Transport failures are, unless the
// caller's own context ended them.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.transient()
	}
	return true
}

// mayRepeat says whether a failed attempt provably changed nothing, so that even a call that
// is not idempotent can be sent again. Only a refusal at the door qualifies: a 503 (server
// unavailable), the concurrent-request limit, or a connection that was never established,
// so no byte of the request left. After a timeout, a reset or closed connection, a 500 or a
// 502, the request may have reached Salesforce and committed before the answer was lost; a
// second insert would then duplicate every row, so the caller gets the error and decides
// (the contact linker re-queries before it creates again).
func mayRepeat(err error) bool {
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.Status == http.StatusServiceUnavailable || apiErr.concurrencyLimit()
	}
	opErr, ok := errors.AsType[*net.OpError](err)
	return ok && opErr.Op == "dial"
}

// send makes one HTTP attempt, in a slot of the client's concurrency gate, and returns 2xx
// responses; anything else becomes an error. A refusal for the org's concurrent-request
// limit lowers the gate's limit.
func (c *Client) send(ctx context.Context, creds Credentials, r request) (resp *response, err error) {
	epoch, err := c.gate.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		apiErr, refused := errors.AsType[*APIError](err)
		refused = refused && apiErr.concurrencyLimit()
		if from, to, raised := c.gate.release(!refused); raised {
			c.adapt(ctx, Adaptation{Kind: AdaptConcurrency, From: from, To: to,
				Reason: fmt.Sprintf("%d requests in a row were answered", gateRecovery)})
		}
		if !refused || c.cfg.DisableAdaptation {
			return
		}
		if from, to, lowered := c.gate.lower(epoch); lowered {
			c.adapt(ctx, Adaptation{Kind: AdaptConcurrency, From: from, To: to, Reason: apiErr.Code + ": " + apiErr.Message})
		}
	}()
	return c.sendAttempt(ctx, creds, r)
}

func (c *Client) sendAttempt(ctx context.Context, creds Credentials, r request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	path := r.path
	if !strings.HasPrefix(path, "/") {
		path = "/services/data/v" + c.cfg.APIVersion + "/" + path
	}
	u := strings.TrimRight(creds.InstanceURL, "/") + path
	if r.query != "" {
		u += "?" + r.query
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("salesforce: building %s %s: %w", r.method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+creds.AccessToken)
	req.Header.Set("Accept", cmp.Or(r.accept, "application/json"))
	if r.body != nil {
		req.Header.Set("Content-Type", cmp.Or(r.contentType, "application/json"))
	}

	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		c.observe(r.endpoint, 0, start)
		// The *url.Error names the URL, which carries no credentials (they travel in a header).
		return nil, fmt.Errorf("salesforce: %s %s: %w", r.method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	c.observe(r.endpoint, resp.StatusCode, start)
	c.recordUsage(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("salesforce: reading %s %s: %w", r.method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newAPIError(r.method, path, resp.StatusCode, data)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (c *Client) observe(endpoint string, status int, start time.Time) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.ObserveCall(endpoint, status, time.Since(start))
	}
}

// backoff is the wait before retry number attempt+1: exponential with "equal jitter", so
// workers that failed together do not retry together, yet each still waits at least half.
func (c *Client) backoff(attempt int) time.Duration {
	return c.jittered(c.cfg.BackoffBase, attempt)
}

// jittered is base doubled attempt times, capped at BackoffMax, with equal jitter.
func (c *Client) jittered(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt, 30)
	if d <= 0 || d > c.cfg.BackoffMax {
		d = c.cfg.BackoffMax
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
