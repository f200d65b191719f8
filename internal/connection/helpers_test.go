package connection_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

const (
	orgID    = "00D5g00000ABCDEFGH"
	userID   = "0055g00000XYZWVUTS"
	username = "integration@acme.example"
)

// env is one simulated org, one private Redis and the connection pieces on them, with every
// log line captured and every secret seen remembered, so a test can prove none leaked.
type env struct {
	t      testing.TB
	ctx    context.Context
	sim    *salesforcesim.Sim
	redis  *redistest.Server
	key    []byte
	store  *connection.Store
	auth   *connection.Authorizer
	server *httptest.Server // serves the Authorizer's handler and a stand-in settings page
	logs   *logging.Buffer
	log    zerolog.Logger

	mu      sync.Mutex
	secrets map[string]bool
}

const callbackPath = "/salesforce/callback"

func newEnv(t testing.TB, simCfg salesforcesim.Config, oauthCfg connection.OAuthConfig) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), redis: redistest.Start(t), logs: &logging.Buffer{}, secrets: map[string]bool{}}
	e.log = zerolog.New(e.logs).With().Timestamp().Logger()
	e.key = make([]byte, 32)
	_, _ = rand.Read(e.key)

	mux := http.NewServeMux()
	e.server = httptest.NewUnstartedServer(mux)
	redirect := "http://" + e.server.Listener.Addr().String() + callbackPath

	simCfg.OrgID, simCfg.UserID, simCfg.Username = orgID, userID, username
	simCfg.RedirectURIs = []string{redirect}
	sim, err := salesforcesim.Start(simCfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start the simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	e.sim = sim
	e.remember(sim.ClientSecret())

	e.store = e.newStore(e.redis.Client(t), e.key)
	oauthCfg.ClientID, oauthCfg.ClientSecret = sim.ClientID(), sim.ClientSecret()
	oauthCfg.RedirectURL, oauthCfg.LoginURL = redirect, sim.LoginURL()
	oauthCfg.Logger = e.log
	e.auth = connection.NewAuthorizer(e.store, oauthCfg)

	mux.Handle("/salesforce/", e.auth.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "settings page") })
	e.server.Start()
	t.Cleanup(e.server.Close)
	t.Cleanup(e.checkNoSecretsLogged)
	return e
}

func (e *env) newStore(rdb redis.UniversalClient, key []byte) *connection.Store {
	e.t.Helper()
	s, err := connection.NewStore(rdb, key, "")
	if err != nil {
		e.t.Fatalf("NewStore: %v", err)
	}
	return s
}

// newSource builds a token source on its own Redis client, standing in for one process.
func (e *env) newSource(cfg connection.SourceConfig) *connection.Source {
	cfg.ClientID, cfg.ClientSecret = e.sim.ClientID(), e.sim.ClientSecret()
	cfg.Logger = e.log
	store := e.newStore(e.redis.Client(e.t), e.key)
	cfg.OnEvent = store.EventRecorder(e.log)
	return connection.NewSource(store, cfg)
}

// dataClient is a Salesforce client on src whose retries are quick.
func (e *env) dataClient(src salesforce.TokenSource) *salesforce.Client {
	e.t.Helper()
	c, err := salesforce.New(salesforce.Config{
		Tokens: src, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, RequestTimeout: 10 * time.Second,
	})
	if err != nil {
		e.t.Fatalf("salesforce.New: %v", err)
	}
	return c
}

// remember marks a value that must never show up in a log line, page or error.
func (e *env) remember(secrets ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			e.secrets[s] = true
		}
	}
}

// rememberGrant remembers the stored grant's tokens and returns it.
func (e *env) rememberGrant() connection.Grant {
	e.t.Helper()
	g, _, err := e.store.Grant(e.ctx)
	if err != nil {
		e.t.Fatalf("stored grant: %v", err)
	}
	e.remember(g.AccessToken, g.RefreshToken)
	return g
}

// noSecrets fails the test when text holds any remembered secret.
func (e *env) noSecrets(what, text string) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.secrets {
		if strings.Contains(text, s) {
			e.t.Errorf("%s contains a secret (%.12s…)", what, s)
		}
	}
}

func (e *env) checkNoSecretsLogged() {
	e.t.Helper()
	e.noSecrets("the log", e.logs.String())
	events, err := e.store.Events(e.ctx, 0)
	if err != nil {
		return // Redis is gone when the test stopped early
	}
	for _, ev := range events {
		e.noSecrets("event "+ev.Kind, ev.Message)
	}
}

// browser follows redirects as a browser would and records every URL it visited.
type browser struct {
	client  *http.Client
	visited []*url.URL
}

func newBrowser() *browser {
	b := &browser{}
	b.client = &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			b.visited = append(b.visited, req.URL)
			return nil
		},
	}
	return b
}

// get fetches u and returns the final response's status, URL and body.
func (b *browser) get(t testing.TB, u string) (int, *url.URL, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// connect presses the page's connect button (a same-origin POST) and follows the redirects.
func (b *browser) connect(t testing.TB, base string) (int, *url.URL, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/salesforce/connect", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(t, req)
}

func (b *browser) do(t testing.TB, req *http.Request) (int, *url.URL, string) {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL, string(body)
}

// noRedirects is a client that stops at the first answer.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// authorize starts a connect attempt and lets the simulator approve it, returning the
// callback URL the browser would be sent to, not yet visited.
func (e *env) authorize() *url.URL {
	e.t.Helper()
	resp, err := noRedirects.Post(e.server.URL+"/salesforce/connect", "", nil)
	if err != nil {
		e.t.Fatalf("POST /salesforce/connect: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("POST /salesforce/connect: status %d, want 303", resp.StatusCode)
	}
	resp, err = noRedirects.Get(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatalf("GET authorize: %v", err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize answered %d %q, want a redirect to the callback", resp.StatusCode, resp.Header.Get("Location"))
	}
	return cb
}

// connect runs the whole flow through the handler and fails the test unless it connects.
func (e *env) connect() connection.Grant {
	e.t.Helper()
	status, final, body := newBrowser().connect(e.t, e.server.URL)
	if status != http.StatusOK || final.Path != "/" || final.Query().Get("connected") != "1" {
		e.t.Fatalf("connect flow ended at %s with %d: %s", final, status, body)
	}
	return e.rememberGrant()
}

func (e *env) status() connection.Status {
	e.t.Helper()
	st, err := e.auth.Status(e.ctx)
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	return st
}

func (e *env) events() []connection.Event {
	e.t.Helper()
	evs, err := e.auth.Events(e.ctx, 0)
	if err != nil {
		e.t.Fatalf("Events: %v", err)
	}
	return evs
}

func hasEvent(evs []connection.Event, kind string) bool {
	for _, ev := range evs {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}
