// Package skilljar reads a Skilljar organisation through the v1 REST API: paging, a shared
// rate limit, retries and typed records.
package skilljar

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limiter paces calls against the API's rate limit; every process of the backfill shares
// one (see internal/ratelimit).
type Limiter interface {
	// Wait blocks until one more call is allowed and reports how long it blocked.
	Wait(ctx context.Context) (time.Duration, error)
	// PauseUntil holds every caller sharing the budget until t.
	PauseUntil(ctx context.Context, t time.Time) error
}

// Observer receives one event per HTTP attempt and per rate-limit wait, for metrics.
// Implementations must be safe for concurrent use and must not block.
type Observer interface {
	// Call reports one attempt: endpoint is a fixed name such as "domain_users", status is
	// the HTTP status or 0 when no response arrived (timeout, connection error).
	Call(endpoint string, status int, d time.Duration)
	// Waited reports time spent blocked in Limiter.Wait before an attempt.
	Waited(d time.Duration)
}

// Config configures a Client. Only APIKey is required.
type Config struct {
	// BaseURL is the API root without /v1; paths such as /v1/courses are appended.
	// Defaults to https://api.skilljar.com.
	BaseURL string
	// APIKey is sent as the HTTP Basic username with an empty password. It never appears in
	// errors.
	APIKey string
	// HTTPClient sends the requests. Defaults to a client whose transport keeps enough idle
	// connections for concurrent progress fetches.
	HTTPClient *http.Client
	// RequestTimeout bounds one attempt, body included. Defaults to 30s.
	RequestTimeout time.Duration
	// MaxRetries is how many times one call is retried after a 5xx, a timeout, a connection
	// error or a malformed body. Defaults to 6; -1 means no retries.
	MaxRetries int
	// MaxRateLimited is how many 429 answers one call may receive before it gives up with a
	// *RateLimitedError. 429s do not count against MaxRetries. Defaults to 20. Skilljar
	// documents no 429 or Retry-After (UNCONFIRMED); the API is Django REST framework, whose
	// throttle answers 429 with Retry-After in seconds, so that is what the client expects,
	// falling back to backoff when the header is missing.
	MaxRateLimited int
	// RetryBaseDelay and RetryMaxDelay shape the backoff between retries: attempt n sleeps a
	// random duration in [0, min(RetryMaxDelay, RetryBaseDelay·2ⁿ)) ("full jitter", so
	// workers that failed together do not retry together). Default to 500ms and 30s.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// PageSize is requested on the endpoints that take page_size. Defaults to 1000, which is
	// also the largest value allowed. The API's cap is UNCONFIRMED (undocumented; one public
	// client asks /v1/users for 10,000): 1,000 is assumed, as the simulator does.
	PageSize int
	// Limiter, if set, is waited on before every attempt. Nil means unlimited.
	Limiter Limiter
	// Observer, if set, receives metrics events.
	Observer Observer
	// DomainsTTL, when positive, keeps the domain list that long: the settings page and
	// every run start ask for it, and each ask would spend the shared call budget on a list
	// that rarely changes. Zero asks the API every time.
	DomainsTTL time.Duration
	// Now is the clock DomainsTTL is measured on. Defaults to time.Now.
	Now func() time.Time
}

// Defaults for Config.
const (
	DefaultBaseURL        = "https://api.skilljar.com"
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxRetries     = 6
	DefaultMaxRateLimited = 20
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
	MaxPageSize           = 1000
)

// maxBody guards memory against a runaway response; a 1,000-learner page with signup
// fields is around a megabyte.
const maxBody = 64 << 20

func (c Config) withDefaults() Config {
	c.BaseURL = strings.TrimRight(cmp.Or(c.BaseURL, DefaultBaseURL), "/")
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxRetries = cmp.Or(c.MaxRetries, DefaultMaxRetries)
	c.MaxRateLimited = cmp.Or(c.MaxRateLimited, DefaultMaxRateLimited)
	c.RetryBaseDelay = cmp.Or(c.RetryBaseDelay, DefaultRetryBaseDelay)
	c.RetryMaxDelay = cmp.Or(c.RetryMaxDelay, DefaultRetryMaxDelay)
	c.PageSize = cmp.Or(c.PageSize, MaxPageSize)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		c.HTTPClient = &http.Client{Transport: t}
	}
	return c
}

func (c Config) validate() (*url.URL, error) {
	var errs []error
	base, err := url.Parse(c.BaseURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("BaseURL %q is not a URL: %w", c.BaseURL, err))
	case base.Scheme != "http" && base.Scheme != "https" || base.Host == "":
		errs = append(errs, fmt.Errorf("BaseURL %q must be an absolute http(s) URL such as %s", c.BaseURL, DefaultBaseURL))
	case base.User != nil:
		// Printing the URL would print the credentials it carries.
		errs = append(errs, errors.New("BaseURL must not carry credentials: pass the key in APIKey"))
	case base.RawQuery != "" || base.Fragment != "":
		errs = append(errs, fmt.Errorf("BaseURL %q must not have a query or fragment", c.BaseURL))
	case strings.HasSuffix(base.Path, "/v1"):
		errs = append(errs, fmt.Errorf("BaseURL %q must not end in /v1: the client appends /v1/ itself", c.BaseURL))
	}
	if c.APIKey == "" {
		errs = append(errs, errors.New("APIKey is required (set SKILLJAR_API_KEY)"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout must be positive, got %s", c.RequestTimeout))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, fmt.Errorf("MaxRetries must be -1 (no retries) or more, got %d", c.MaxRetries))
	}
	if c.MaxRateLimited < 0 {
		errs = append(errs, fmt.Errorf("MaxRateLimited must not be negative, got %d", c.MaxRateLimited))
	}
	if c.RetryBaseDelay < 0 || c.RetryMaxDelay < 0 {
		errs = append(errs, errors.New("RetryBaseDelay and RetryMaxDelay must not be negative"))
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		errs = append(errs, fmt.Errorf("PageSize must be between 1 and %d, got %d", MaxPageSize, c.PageSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("skilljar: invalid config: %w", err)
	}
	return base, nil
}

// Client calls the Skilljar v1 API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	root string // BaseURL without a trailing slash, as requests are built from it

	domainsMu sync.Mutex
	domains   []Domain
	domainsAt time.Time
}

// New validates cfg, fills its defaults and returns a client. Errors name the field at fault.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, base: base, root: strings.TrimRight(base.String(), "/")}, nil
}

// Page is one page of a list endpoint. The list calls take a cursor naming the page: "" is
// the first page and a page's Next is the cursor of the following one. Cursors are opaque to
// callers; underneath each is the page's URL exactly as the API gave it, so cursors saved
// before they were opaque (checkpoints holding URLs) stay valid, and every cursor is checked
// against the configured host before the key is sent with it.
type Page[T any] struct {
	// URL is the page that was fetched; it is the cursor that fetches the same page again.
	URL string
	// Next is the cursor of the following page (its URL exactly as the API gave it), or ""
	// on the last.
	Next string
	// Count is the total number of records across all pages when HasCount is set: the
	// cursor-paged /v1/users and bare-array answers carry none.
	Count    int
	HasCount bool
	Results  []T
}

// Ping checks that the API is reachable and the key is accepted.
func (c *Client) Ping(ctx context.Context) error {
	return c.get(ctx, "ping", c.url("/v1/ping", nil), nil)
}

// Domains lists every domain of the organisation, all pages.
func (c *Client) Domains(ctx context.Context) ([]Domain, error) {
	if c.cfg.DomainsTTL <= 0 {
		return all[Domain](ctx, c, "domains", c.url("/v1/domains", nil))
	}
	c.domainsMu.Lock()
	defer c.domainsMu.Unlock()
	if c.domains != nil && c.cfg.Now().Sub(c.domainsAt) < c.cfg.DomainsTTL {
		return slices.Clone(c.domains), nil
	}
	d, err := all[Domain](ctx, c, "domains", c.url("/v1/domains", nil))
	if err != nil {
		return nil, err
	}
	c.domains, c.domainsAt = d, c.cfg.Now()
	return slices.Clone(d), nil
}

// DomainUsers fetches the page at cursor of a domain's learners, with their signup fields.
func (c *Client) DomainUsers(ctx context.Context, domain, cursor string) (Page[DomainUser], error) {
	return fetchPage[DomainUser](ctx, c, "domain_users", cmp.Or(cursor, c.domainUsersURL(domain, c.cfg.PageSize, true)))
}

// DomainUserCount returns how many learners a domain has, from the count of a one-learner
// page, so counting costs one call whatever the domain's size.
func (c *Client) DomainUserCount(ctx context.Context, domain string) (int64, error) {
	p, err := fetchPage[DomainUser](ctx, c, "domain_users", c.domainUsersURL(domain, 1, false))
	if err != nil {
		return 0, err
	}
	if p.HasCount {
		return int64(p.Count), nil
	}
	return int64(len(p.Results)), nil
}

func (c *Client) domainUsersURL(domain string, pageSize int, signupFields bool) string {
	q := url.Values{"page_size": {strconv.Itoa(pageSize)}}
	if signupFields {
		q.Set("include_signup_field_data", "true")
	}
	return c.url("/v1/domains/"+url.PathEscape(domain)+"/users", q)
}

// Courses fetches the page at cursor of the organisation's courses.
func (c *Client) Courses(ctx context.Context, cursor string) (Page[Course], error) {
	first := c.url("/v1/courses", url.Values{"page_size": {strconv.Itoa(c.cfg.PageSize)}})
	return fetchPage[Course](ctx, c, "courses", cmp.Or(cursor, first))
}

// PublishedCourses fetches the page at cursor of the courses published to a domain, and sets
// Domain on each, since the API does not echo it. The endpoint documents no page_size, so
// none is sent.
func (c *Client) PublishedCourses(ctx context.Context, domain, cursor string) (Page[PublishedCourse], error) {
	first := c.url("/v1/domains/"+url.PathEscape(domain)+"/published-courses", nil)
	p, err := fetchPage[PublishedCourse](ctx, c, "published_courses", cmp.Or(cursor, first))
	for i := range p.Results {
		p.Results[i].Domain = domain
	}
	return p, err
}

// Users fetches the page at cursor of the organisation-wide learner list. The endpoint pages
// by opaque cursor, so the page carries no Count. /v1/users documents no page_size, but the
// one public client that pages it asks for page_size=10000 and reports large pages
// (reference/skilljar.md §4.1), so it is sent; an API that ignores it only costs more pages.
func (c *Client) Users(ctx context.Context, cursor string) (Page[UserOverview], error) {
	first := c.url("/v1/users", url.Values{"page_size": {strconv.Itoa(c.cfg.PageSize)}})
	return fetchPage[UserOverview](ctx, c, "users", cmp.Or(cursor, first))
}

// UserProgress returns a learner's progress in every published course across all domains.
// The API answers with one unpaginated bare array; should it ever answer with an envelope,
// every page is read.
func (c *Client) UserProgress(ctx context.Context, userID string) ([]UserCourseProgress, error) {
	if userID == "" {
		return nil, errors.New("skilljar: UserProgress needs a user id")
	}
	return all[UserCourseProgress](ctx, c, "user_progress", c.url("/v1/users/"+url.PathEscape(userID)+"/published-courses", nil))
}

func (c *Client) url(path string, q url.Values) string {
	if len(q) == 0 {
		return c.root + path
	}
	return c.root + path + "?" + q.Encode()
}

// all follows a list from its first page to its last.
func all[T any](ctx context.Context, c *Client, endpoint, first string) ([]T, error) {
	var out []T
	for next := first; next != ""; {
		p, err := fetchPage[T](ctx, c, endpoint, next)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Results...)
		next = p.Next
	}
	return out, nil
}

func fetchPage[T any](ctx context.Context, c *Client, endpoint, pageURL string) (Page[T], error) {
	if err := c.checkURL(pageURL); err != nil {
		return Page[T]{}, err
	}
	var p Page[T]
	err := c.get(ctx, endpoint, pageURL, func(body []byte) error {
		var err error
		p, err = decodePage[T](body)
		return err
	})
	if err != nil {
		return Page[T]{}, err
	}
	p.URL = pageURL
	if p.Next != "" {
		// Check the link now rather than when it is fetched, so the error names the page
		// that carried it.
		if err := c.checkURL(p.Next); err != nil {
			return Page[T]{}, fmt.Errorf("skilljar: next link of page %s: %w", pageURL, err)
		}
	}
	return p, nil
}

// checkURL accepts only absolute URLs on the configured API host, so neither a tampered
// checkpoint nor a hostile next link can make the client send the API key elsewhere.
func (c *Client) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.User != nil || !sameOrigin(u, c.base) {
		return &ForeignURLError{URL: redactURL(raw), Base: c.base.Scheme + "://" + c.base.Host}
	}
	return nil
}

func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// redactURL drops any userinfo before a URL is put in an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	return u.String()
}

// decodePage reads the DRF envelope {count, next, previous, results}, the cursor envelope
// without count, or a bare array.
func decodePage[T any](body []byte) (Page[T], error) {
	var p Page[T]
	// encoding/json would silently turn corrupt bytes into U+FFFD; a garbled page must be
	// refetched rather than stored.
	if !utf8.Valid(body) {
		return p, errors.New("body is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return p, errors.New("empty body")
	}
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(trimmed, &p.Results); err != nil {
			return p, fmt.Errorf("decode array: %w", err)
		}
		return p, nil
	case '{':
		var env struct {
			Count   *int            `json:"count"`
			Next    *string         `json:"next"`
			Results json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(trimmed, &env); err != nil {
			return p, fmt.Errorf("decode envelope: %w", err)
		}
		if len(env.Results) == 0 || string(env.Results) == "null" {
			return p, errors.New("envelope has no results")
		}
		if err := json.Unmarshal(env.Results, &p.Results); err != nil {
			return p, fmt.Errorf("decode results: %w", err)
		}
		if env.Count != nil {
			p.Count, p.HasCount = *env.Count, true
		}
		if env.Next != nil {
			p.Next = *env.Next
		}
		return p, nil
	default:
		return p, fmt.Errorf("body is not JSON (starts with %q)", trimmed[:min(len(trimmed), 16)])
	}
}
