// Package httpapi serves the backfill's HTTP API under /v1, its health checks, and the
// mount points for the OAuth flow, the settings page, the asynq UI and metrics, all behind
// one token.
package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
)

// Runs starts and controls runs; *pipeline.Engine is one.
type Runs interface {
	Start(ctx context.Context, req pipeline.StartRequest) (run *runstore.Run, created bool, err error)
	Get(ctx context.Context, id string) (*runstore.Run, error)
	List(ctx context.Context, limit int) ([]*runstore.Run, error)
	Pause(ctx context.Context, id string) (*runstore.Run, error)
	Resume(ctx context.Context, id string) (*runstore.Run, error)
	Cancel(ctx context.Context, id string) (*runstore.Run, error)
	RetryRejected(ctx context.Context, id string) (*runstore.Run, error)
}

// Ledger reads what runs recorded; *runstore.Store is one.
type Ledger interface {
	Events(ctx context.Context, id string, limit int) ([]runstore.Event, error)
	RejectedPage(ctx context.Context, id string, offset, limit int) ([]runstore.Rejected, int64, error)
	Samples(ctx context.Context, id string) ([]runstore.Sample, error)
}

// Settings reads and saves the connection's settings; *settings.Store is one.
type Settings interface {
	Get(ctx context.Context) (settings.Settings, error)
	Put(ctx context.Context, s settings.Settings) (settings.Settings, error)
}

// Connection reports and ends the Salesforce connection.
type Connection interface {
	Status(ctx context.Context) (connection.Status, error)
	// Disconnect revokes the grant at Salesforce and forgets the tokens.
	Disconnect(ctx context.Context) error
	// Events returns the connection's activity log (connected, refreshed, needs_reauth...),
	// newest first.
	Events(ctx context.Context, limit int) ([]connection.Event, error)
}

// Doctor checks the connections and the mapping for a scope, and fits the mapping to the
// org; *doctor.Doctor is one.
type Doctor interface {
	Check(ctx context.Context, sc runstore.Scope) (*doctor.Report, error)
	SuggestMapping(ctx context.Context, sc runstore.Scope) (*mapping.Suggestion, error)
}

// Pinger answers whether Redis is reachable; every go-redis client is one.
type Pinger interface {
	Ping(ctx context.Context) *redis.StatusCmd
}

// Config configures the server.
type Config struct {
	// Token is BACKFILL_API_TOKEN, the one credential every protected route accepts: as a
	// Bearer token, or as the password of HTTP Basic (any user name) for browsers. Required.
	Token string
	// MaxBodyBytes bounds a request body; a larger one gets 413. Defaults to 64 KiB.
	MaxBodyBytes int64
}

// Deps are what the server serves. Runs, Ledger, Settings and Redis are required.
//
// The handlers OAuth, Monitoring, Metrics and Page are mounted when set. Each gets the
// request with its full path, and only after the token was checked, except OAuth's
// /salesforce/callback, which the single-use OAuth state protects. State-changing browser
// requests from another origin are refused before they reach any of them (net/http's
// CrossOriginProtection, by Sec-Fetch-Site and Origin), so their forms need no CSRF token
// of their own.
type Deps struct {
	Runs     Runs
	Ledger   Ledger
	Settings Settings
	Redis    Pinger
	// Connection serves /v1/connection; without it that route answers 503 not_configured.
	Connection Connection
	// Doctor serves /v1/doctor and /v1/mapping/suggestion; without it they answer 503
	// not_configured.
	Doctor Doctor
	Logger zerolog.Logger

	// OAuth serves /salesforce/ (connect and callback).
	OAuth http.Handler
	// Monitoring serves /monitoring/ (the asynq UI), behind HTTP Basic.
	Monitoring http.Handler
	// Metrics serves /metrics.
	Metrics http.Handler
	// Page serves / (the settings and Backfill page), behind HTTP Basic.
	Page http.Handler
	// Webhooks serves /v1/webhooks; WebhookReceiver serves /webhooks/skilljar, which
	// authenticates Skilljar's deliveries itself, with the credentials install gave it.
	Webhooks        Webhooks
	WebhookReceiver http.Handler
}

// Server is the HTTP API.
type Server struct {
	cfg       Config
	d         Deps
	tokenHash [sha256.Size]byte
	routes    []route
	handler   http.Handler
}

// route is one method on one path of the API. Routes are the single source of what the mux
// serves and what the OpenAPI document must describe.
type route struct {
	method  string
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request) error
	// public routes are served without the token.
	public bool
	// browser routes are pages: a request without the token is challenged for HTTP Basic,
	// so a browser asks for the password, where API routes challenge for a Bearer token.
	browser bool
}

// New returns the server.
func New(cfg Config, d Deps) (*Server, error) {
	switch {
	case cfg.Token == "":
		return nil, errors.New("httpapi: Config.Token is required")
	case d.Runs == nil || d.Ledger == nil || d.Settings == nil || d.Redis == nil:
		return nil, errors.New("httpapi: Deps.Runs, Ledger, Settings and Redis are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	s := &Server{cfg: cfg, d: d, tokenHash: sha256.Sum256([]byte(cfg.Token))}
	s.routes = []route{
		{method: http.MethodGet, pattern: "/healthz", handle: s.healthz, public: true},
		{method: http.MethodGet, pattern: "/readyz", handle: s.readyz, public: true},
		{method: http.MethodGet, pattern: "/v1/openapi.json", handle: s.openAPI},
		{method: http.MethodGet, pattern: "/v1/docs", handle: s.docs, browser: true},
		{method: http.MethodPost, pattern: "/v1/backfills", handle: s.startBackfill},
		{method: http.MethodGet, pattern: "/v1/doctor", handle: s.doctor},
		{method: http.MethodGet, pattern: "/v1/mapping/suggestion", handle: s.suggestMapping},
		{method: http.MethodGet, pattern: "/v1/backfills", handle: s.listBackfills},
		{method: http.MethodGet, pattern: "/v1/backfills/{id}", handle: s.getBackfill},
		{method: http.MethodPost, pattern: "/v1/backfills/{id}/pause", handle: s.runAction(http.StatusOK, d.Runs.Pause)},
		{method: http.MethodPost, pattern: "/v1/backfills/{id}/resume", handle: s.runAction(http.StatusOK, d.Runs.Resume)},
		{method: http.MethodPost, pattern: "/v1/backfills/{id}/cancel", handle: s.runAction(http.StatusOK, d.Runs.Cancel)},
		{method: http.MethodPost, pattern: "/v1/backfills/{id}/retry-rejected", handle: s.runAction(http.StatusAccepted, d.Runs.RetryRejected)},
		{method: http.MethodGet, pattern: "/v1/backfills/{id}/events", handle: s.listEvents},
		{method: http.MethodGet, pattern: "/v1/backfills/{id}/rejected", handle: s.listRejected},
		{method: http.MethodGet, pattern: "/v1/backfills/{id}/samples", handle: s.listSamples},
		{method: http.MethodGet, pattern: "/v1/settings", handle: s.getSettings},
		{method: http.MethodPut, pattern: "/v1/settings", handle: s.putSettings},
		{method: http.MethodGet, pattern: "/v1/connection", handle: s.getConnection},
		{method: http.MethodDelete, pattern: "/v1/connection", handle: s.deleteConnection},
		{method: http.MethodGet, pattern: "/v1/connection/events", handle: s.connectionEvents},
		{method: http.MethodGet, pattern: "/v1/webhooks", handle: s.getWebhooks},
		{method: http.MethodPost, pattern: "/v1/webhooks", handle: s.installWebhooks},
		{method: http.MethodDelete, pattern: "/v1/webhooks", handle: s.removeWebhooks},
	}
	s.handler = s.logRequests(s.crossOriginProtection().Handler(s.mux()))
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// mux registers the routes and the mounts. Routes are registered per path, not per method,
// so a wrong method gets our JSON 405 with Allow rather than the mux's plain-text one.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	byPattern := map[string][]route{}
	var patterns []string
	for _, rt := range s.routes {
		if _, seen := byPattern[rt.pattern]; !seen {
			patterns = append(patterns, rt.pattern)
		}
		byPattern[rt.pattern] = append(byPattern[rt.pattern], rt)
	}
	for _, p := range patterns {
		var h http.Handler = s.dispatch(byPattern[p])
		switch first := byPattern[p][0]; {
		case first.browser:
			h = s.requireToken(basicChallenge, h)
		case !first.public:
			h = s.requireToken(bearerChallenge, h)
		}
		mux.Handle(p, h)
	}
	mux.Handle("/v1/", s.requireToken(bearerChallenge, s.wrap(notFound)))

	if s.d.OAuth != nil {
		protected := s.requireToken(basicChallenge, s.d.OAuth)
		mux.Handle("/salesforce/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/salesforce/callback" {
				s.d.OAuth.ServeHTTP(w, r)
				return
			}
			protected.ServeHTTP(w, r)
		}))
	}
	if s.d.Monitoring != nil {
		mux.Handle("/monitoring/", s.requireToken(basicChallenge, s.d.Monitoring))
	}
	if s.d.WebhookReceiver != nil {
		mux.Handle("/webhooks/skilljar", s.d.WebhookReceiver)
	}
	if s.d.Metrics != nil {
		mux.Handle("/metrics", s.requireToken(bearerChallenge, s.d.Metrics))
	}
	if s.d.Page != nil {
		mux.Handle("/", s.requireToken(basicChallenge, s.d.Page))
	} else {
		mux.Handle("/", s.wrap(notFound))
	}
	return mux
}

// dispatch serves the routes of one path by method.
func (s *Server) dispatch(routes []route) http.Handler {
	allowed := make([]string, 0, len(routes))
	handlers := map[string]http.Handler{}
	for _, rt := range routes {
		allowed = append(allowed, rt.method)
		handlers[rt.method] = s.wrap(rt.handle)
	}
	sort.Strings(allowed)
	if h, ok := handlers[http.MethodGet]; ok {
		// Probes and link checkers send HEAD; net/http drops the body.
		handlers[http.MethodHead] = h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handlers[r.Method]; ok {
			h.ServeHTTP(w, r)
			return
		}
		s.fail(w, r, methodNotAllowed(r.Method, allowed))
	})
}

// wrap turns a handler that returns an error into one that answers it.
func (s *Server) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

func notFound(_ http.ResponseWriter, r *http.Request) error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no route " + r.URL.Path + "; see /v1/openapi.json for the API"}
}

// crossOriginProtection refuses state-changing browser requests from other origins. Basic
// credentials are cached and resent by browsers, so without it another site could post a
// form to /v1 with the operator's credentials.
func (s *Server) crossOriginProtection() *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(s.wrap(func(http.ResponseWriter, *http.Request) error {
		return &Error{Status: http.StatusForbidden, Code: CodeCrossOrigin,
			Message: "cross-origin request refused: state-changing requests must come from this server's own pages or from a non-browser client"}
	}))
	return p
}

// Limits bound what one client can hold of the HTTP server: without them a body sent a byte
// every few seconds keeps a connection and its goroutine for as long as the client likes.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included. Bodies here are at most
	// Config.MaxBodyBytes, which any client sends in well under this.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the answer, against clients that stop reading.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no next request.
	IdleTimeout time.Duration
	// MaxConns is how many connections are served at once; further ones wait in the
	// listen backlog until one closes.
	MaxConns int
}

// DefaultLimits are the limits the api role serves with.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
	WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxConns: 512,
}

// Server returns an http.Server that serves h within the limits.
func (l Limits) Server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout}
}

// Listener returns ln accepting at most MaxConns open connections at once.
func (l Limits) Listener(ln net.Listener) net.Listener {
	if l.MaxConns <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, l.MaxConns), done: make(chan struct{})}
}

// limitListener holds a slot per accepted connection until the connection is closed.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close, so an Accept waiting for a slot returns
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
