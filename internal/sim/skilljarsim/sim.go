// Package skilljarsim simulates Skilljar's v1 REST API over real HTTP, from a deterministic
// generated org, with the paging, auth, throttling and failure modes reference/skilljar.md
// describes.
package skilljarsim

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// User list orders (Config.UserOrder).
const (
	OrderCreated     = "created"
	OrderNewestFirst = "newest_first"
	// OrderUnstable serves rows whose sort keys tie (the same TieSpan) in a new order on
	// every request, as an unordered query may: page-number paging then shifts rows between
	// pages from one request to the next.
	OrderUnstable = "unstable"
)

// Config sizes the generated org and sets the simulator's limits and faults. The zero value
// is a 3-domain, 1,000-learner, 20-course org with no latency, faults or limits.
type Config struct {
	// Seed drives the generator and the fault dice; the same seed and sizes give an
	// identical org.
	Seed int64
	// Domains is the number of domains. Defaults to 3.
	Domains int
	// Users is the number of learners. Defaults to 1,000.
	Users int
	// Courses is the number of courses. Defaults to 20.
	Courses int
	// APIKey is the only key the simulator accepts. Defaults to "sk-sim-" and a hex string
	// derived from Seed.
	APIKey string

	// Latency delays every authenticated response, plus a uniform [0, Jitter) on top.
	Latency, Jitter time.Duration
	// FaultRate is the probability that an authenticated request gets a 5xx: a 502 or 503
	// with an HTML body, or a 500 with a JSON one.
	FaultRate float64
	// SlowRate is the probability that a response is held back by SlowDelay, long enough
	// for client timeouts to fire. SlowDelay defaults to 10 s.
	SlowRate  float64
	SlowDelay time.Duration
	// GarbleRate is the probability that a 200 JSON body arrives broken: cut off mid-body
	// or with corrupt bytes.
	GarbleRate float64

	// PerMinute and PerHour are the per-key request limits; 0 means unlimited. Skilljar
	// publishes none; the only source (a third-party connector) states 600/min burst and
	// 5,000/hour (UNCONFIRMED), so callers choose.
	PerMinute, PerHour int
	// TimeScale speeds up the limit windows: at 60 a "minute" lasts 1 s and an "hour" 60 s.
	// Retry-After stays in real seconds (rounded up, at least 1), so a client that honours it
	// waits the scaled time. Defaults to 1 (real time).
	TimeScale float64
	// Now is the throttle's clock, so tests move past a window instead of waiting it out.
	// Defaults to time.Now.
	Now func() time.Time
	// ThrottleWindow is how the limits count: ThrottleSliding (DRF's throttle, the default)
	// or ThrottleFixed. Which one Skilljar uses is UNCONFIRMED.
	ThrottleWindow string

	// UserOrder is the order of /v1/users and of domain user lists: OrderCreated (new
	// learners append at the end), OrderNewestFirst (they appear first and shift page
	// numbers) or OrderUnstable (ties in a new order on each request; /v1/users in cursor
	// mode keeps sign-up order, which its cursor needs). The live API documents no order
	// (reference/skilljar.md §12). Defaults to OrderCreated.
	UserOrder string
	// TieSpan is how close two sort keys (sign-up, or joining the domain) are to tie under
	// OrderUnstable: a model of an order by a coarse key, UNCONFIRMED. Defaults to 30 days.
	TieSpan time.Duration
}

func (c Config) withDefaults() Config {
	c.Domains = cmp.Or(c.Domains, 3)
	c.Users = cmp.Or(c.Users, 1000)
	c.Courses = cmp.Or(c.Courses, 20)
	c.APIKey = cmp.Or(c.APIKey, fmt.Sprintf("sk-sim-%016x", mix64(uint64(c.Seed)^0x5e1ec7ed)))
	c.SlowDelay = cmp.Or(c.SlowDelay, 10*time.Second)
	c.TimeScale = cmp.Or(c.TimeScale, 1)
	if c.Now == nil {
		c.Now = time.Now
	}
	c.UserOrder = cmp.Or(c.UserOrder, OrderCreated)
	c.TieSpan = cmp.Or(c.TieSpan, 30*24*time.Hour)
	return c
}

func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"Domains", c.Domains}, {"Users", c.Users}, {"Courses", c.Courses}, {"PerMinute", c.PerMinute}, {"PerHour", c.PerHour}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"FaultRate", c.FaultRate}, {"SlowRate", c.SlowRate}, {"GarbleRate", c.GarbleRate}} {
		if f.v < 0 || f.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be a probability between 0 and 1, got %v", f.name, f.v))
		}
	}
	if c.Latency < 0 || c.Jitter < 0 || c.SlowDelay < 0 {
		errs = append(errs, errors.New("the latency, jitter and slow delay must not be negative"))
	}
	if c.TimeScale < 0 {
		errs = append(errs, fmt.Errorf("TimeScale must be positive, got %v", c.TimeScale))
	}
	if err := checkThrottleWindow(c.ThrottleWindow); err != nil {
		errs = append(errs, err)
	}
	if c.UserOrder != "" && c.UserOrder != OrderCreated && c.UserOrder != OrderNewestFirst && c.UserOrder != OrderUnstable {
		errs = append(errs, fmt.Errorf("UserOrder must be %q, %q or %q, got %q", OrderCreated, OrderNewestFirst, OrderUnstable, c.UserOrder))
	}
	if c.TieSpan < 0 {
		errs = append(errs, fmt.Errorf("TieSpan must not be negative, got %v", c.TieSpan))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("skilljarsim: invalid config: %w", err)
	}
	return nil
}

// Sim is a running (or ready to run) Skilljar simulator. All methods are safe for concurrent
// use while it serves.
type Sim struct {
	cfg     Config
	handler http.Handler

	mu       sync.RWMutex // guards org, ids, clock, liveDice and away
	org      Org
	ids      idSource
	clock    time.Time // latest timestamp handed out by a live change
	liveDice *rand.Rand
	away     []away // members off their domain's list (StartChurn), first to rejoin first

	diceMu sync.Mutex // guards dice, the fault and latency randomness
	dice   *rand.Rand

	calls    callLog
	throttle *throttle
	faults   faultQueue
	hooks    hookState

	closing   chan struct{}
	closeOnce sync.Once
	live      sync.WaitGroup
	srv       *http.Server
	url       string
}

// New generates the org described by cfg. It starts no listener: serve Handler yourself or
// use Start. New panics on an invalid Config; Start returns the error instead.
func New(cfg Config) *Sim {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	org, ids := generate(cfg)
	s := &Sim{
		cfg:      cfg,
		org:      org,
		ids:      ids,
		clock:    generatedUntil,
		dice:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0xd1ce)),
		liveDice: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x11fe)),
		throttle: newThrottle(cfg),
		closing:  make(chan struct{}),
	}
	s.handler = s.routes()
	return s
}

// Start generates the org and serves it on addr ("127.0.0.1:0" picks a free port).
func Start(cfg Config, addr string) (*Sim, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("skilljarsim: listen on %s: %w", addr, err)
	}
	s := New(cfg)
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Handler serves the API; mount it at the root (paths begin with /v1/).
func (s *Sim) Handler() http.Handler { return s.handler }

// URL is the base URL without /v1 (clients append /v1/...), or "" when Start was not used.
func (s *Sim) URL() string { return s.url }

// APIKey is the key the simulator accepts as the Basic-auth username.
func (s *Sim) APIKey() string { return s.cfg.APIKey }

// Config is the configuration in effect, defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

// Close stops live changes, aborts delayed responses and stops the listener.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.live.Wait()
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Org returns a deep copy of the current state.
func (s *Sim) Org() Org {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.org.clone()
}
