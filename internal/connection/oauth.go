package connection

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/sjbackfill/backfill/internal/upstream"
)

// OAuthConfig configures the web-server flow that connects an org.
type OAuthConfig struct {
	// ClientID and ClientSecret are the connected app's consumer key and secret. Required.
	ClientID, ClientSecret string
	// RedirectURL is where Salesforce sends the browser back (SALESFORCE_REDIRECT_URL), e.g.
	// https://host/salesforce/callback; it must match the app's callback URL. Required.
	RedirectURL string
	// Environment is what the operator chose: "production", "sandbox" or a My Domain URL.
	// It is only shown in the status.
	Environment string
	// LoginURL is the login host derived from the environment (config.LoginURL). Defaults
	// to https://login.salesforce.com.
	LoginURL string
	// EnvironmentFor, when set, picks the environment and login host at each connect, so an
	// operator's Sandbox/Production choice on the settings page takes effect without a
	// restart. Empty answers fall back to Environment and LoginURL.
	EnvironmentFor func(ctx context.Context) (environment, loginURL string)
	// StateTTL is how long a connect attempt may take from redirect to callback. Defaults
	// to 10 minutes.
	StateTTL time.Duration
	// Now is the clock StateTTL is measured on. Defaults to time.Now.
	Now func() time.Time
	// CallbacksPerMinute bounds the callbacks this process answers in a minute; more get
	// 429. Defaults to DefaultCallbacksPerMinute.
	CallbacksPerMinute int
	// HTTPClient sends token, identity and revoke requests. Defaults to one with a 30s timeout.
	HTTPClient *http.Client
	// Logger gets the flow's events; token values never reach it.
	Logger zerolog.Logger
}

// DefaultStateTTL is OAuthConfig.StateTTL's default.
const DefaultStateTTL = 10 * time.Minute

// Authorizer runs the OAuth web-server flow with PKCE, and disconnects.
type Authorizer struct {
	store     *Store
	cfg       OAuthConfig
	callbacks *window

	mu    sync.Mutex
	hooks []func(context.Context)
}

// NewAuthorizer returns an authorizer that keeps the grant in store.
func NewAuthorizer(store *Store, cfg OAuthConfig) *Authorizer {
	cfg.LoginURL = strings.TrimRight(cmp.Or(cfg.LoginURL, "https://login.salesforce.com"), "/")
	cfg.StateTTL = cmp.Or(cfg.StateTTL, DefaultStateTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.CallbacksPerMinute = cmp.Or(cfg.CallbacksPerMinute, DefaultCallbacksPerMinute)
	return &Authorizer{store: store, cfg: cfg, callbacks: &window{max: cfg.CallbacksPerMinute}}
}

// OnConnected registers fn to run after every successful connect, e.g. to resume runs that
// wait for authentication. Hooks run in order on the callback's request, with its context,
// so they should only start work, not do it.
func (a *Authorizer) OnConnected(fn func(ctx context.Context)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hooks = append(a.hooks, fn)
}

func (a *Authorizer) oauth(loginURL string) (*oauth2.Config, error) {
	switch {
	case a.cfg.ClientID == "":
		return nil, errors.New("SALESFORCE_CLIENT_ID is not set: the connected app's consumer key is needed to connect")
	case a.cfg.ClientSecret == "":
		return nil, errors.New("SALESFORCE_CLIENT_SECRET is not set: the connected app's consumer secret is needed to connect")
	case a.cfg.RedirectURL == "":
		return nil, errors.New("SALESFORCE_REDIRECT_URL is not set: it must be this service's /salesforce/callback URL, as registered in the connected app")
	}
	return oauthConfig(a.cfg.ClientID, a.cfg.ClientSecret, loginURL, a.cfg.RedirectURL), nil
}

// environment is where a new connect attempt goes.
func (a *Authorizer) environment(ctx context.Context) attempt {
	at := attempt{environment: a.cfg.Environment, loginURL: a.cfg.LoginURL}
	if a.cfg.EnvironmentFor != nil {
		env, login := a.cfg.EnvironmentFor(ctx)
		if env != "" && login != "" {
			at.environment, at.loginURL = env, strings.TrimRight(login, "/")
		}
	}
	return at
}

// Begin starts a connect attempt: it remembers a random single-use state with a PKCE
// verifier for StateTTL and returns the login host's authorize URL to send the browser to.
func (a *Authorizer) Begin(ctx context.Context) (authURL string, err error) {
	at := a.environment(ctx)
	oc, err := a.oauth(at.loginURL)
	if err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	state := base64.RawURLEncoding.EncodeToString(b)
	at.verifier = oauth2.GenerateVerifier()
	if err := a.store.saveState(ctx, state, at, a.cfg.Now(), a.cfg.StateTTL); err != nil {
		return "", err
	}
	return oc.AuthCodeURL(state, oauth2.S256ChallengeOption(at.verifier)), nil
}

var errNoCode = errors.New("the Salesforce callback carried no authorization code; start again at /salesforce/connect")

// ConsentError is a callback that brought an OAuth error instead of a code, typically
// access_denied when the user clicked Deny.
type ConsentError struct {
	Code, Description string
}

func (e *ConsentError) Error() string {
	msg := "Salesforce did not grant access (" + e.Code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	msg += ")"
	if e.Code == "access_denied" {
		msg += ": the Salesforce user declined; connect again and choose Allow"
	}
	return msg
}

// Complete finishes a connect attempt from its callback: it consumes the state (a
// *StateError says why it is refused), exchanges the code with the state's PKCE verifier,
// stores the grant and runs the OnConnected hooks.
func (a *Authorizer) Complete(ctx context.Context, state, code string) (Status, error) {
	st, err := a.complete(ctx, state, code)
	if err != nil {
		a.refused(ctx, err)
	}
	return st, err
}

func (a *Authorizer) complete(ctx context.Context, state, code string) (Status, error) {
	at, err := a.store.takeState(ctx, state, a.cfg.Now())
	if err != nil {
		return Status{}, err
	}
	if at.loginURL == "" {
		at.environment, at.loginURL = a.cfg.Environment, a.cfg.LoginURL
	}
	oc, err := a.oauth(at.loginURL)
	if err != nil {
		return Status{}, err
	}
	if code == "" {
		return Status{}, errNoCode
	}
	tok, err := oc.Exchange(withClient(ctx, a.cfg.HTTPClient), code, oauth2.VerifierOption(at.verifier))
	if err != nil {
		return Status{}, fmt.Errorf("exchange the authorization code: %w", tokenError(err))
	}
	g := merge(Grant{LoginURL: at.loginURL}, tok)
	switch {
	case g.RefreshToken == "":
		return Status{}, &upstream.Error{Service: upstream.Salesforce, Err: errors.New("the Salesforce org issued no refresh token: allow the refresh_token (offline_access) scope in the connected app's OAuth settings")}
	case g.InstanceURL == "":
		return Status{}, &upstream.Error{Service: upstream.Salesforce, Err: errors.New("the Salesforce token response named no instance_url")}
	}
	st := Status{Environment: at.environment}
	st.OrgID, st.UserID = parseIdentityURL(g.IdentityURL)
	st.Username = a.username(ctx, g)

	old, _, oldErr := a.store.Grant(ctx)
	if err := a.store.Connect(ctx, g, st); err != nil {
		return Status{}, err
	}
	if oldErr == nil && old.RefreshToken != g.RefreshToken {
		// A replaced grant would live on in Salesforce and count against its five grants
		// per user and app.
		if err := revoke(ctx, a.cfg.HTTPClient, old.LoginURL, old.RefreshToken); err != nil {
			a.cfg.Logger.Warn().Err(err).Msg("could not revoke the Salesforce grant this connect replaced")
		}
	}
	msg := fmt.Sprintf("Salesforce connected: org %s, user %s, instance %s", st.OrgID, cmp.Or(st.Username, st.UserID), g.InstanceURL)
	a.cfg.Logger.Info().Str("org_id", st.OrgID).Str("user_id", st.UserID).Str("instance_url", g.InstanceURL).Msg("Salesforce connected")
	a.event(ctx, EventConnected, msg)

	a.mu.Lock()
	hooks := slices.Clone(a.hooks)
	a.mu.Unlock()
	for _, h := range hooks {
		h(ctx)
	}
	return a.store.Status(ctx)
}

// failed records a connect attempt that did not connect.
// refused logs a callback that did not connect. Only one with a valid state reaches the
// activity log: anyone can send a browser to the callback with any state, and such
// callbacks must not push the real events out of the log.
func (a *Authorizer) refused(ctx context.Context, err error) {
	var se *StateError
	if errors.As(err, &se) {
		a.cfg.Logger.Warn().Str("reason", se.Reason).Msg("refused a Salesforce callback without a valid OAuth state")
		return
	}
	a.failed(ctx, err)
}

func (a *Authorizer) failed(ctx context.Context, err error) {
	a.cfg.Logger.Warn().Err(err).Msg("Salesforce connect failed")
	a.event(ctx, EventConnectFailed, err.Error())
}

func (a *Authorizer) event(ctx context.Context, kind, message string) {
	if err := a.store.AddEvent(ctx, kind, message); err != nil {
		a.cfg.Logger.Warn().Err(err).Str("event", kind).Msg("connection event not saved")
	}
}

// parseIdentityURL reads the org and user ids from {login}/id/{orgId}/{userId}.
func parseIdentityURL(id string) (orgID, userID string) {
	u, err := url.Parse(id)
	if err != nil {
		return "", ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 3 || parts[len(parts)-3] != "id" {
		return "", ""
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

// username asks the identity URL who connected. It is only for the status page, so any
// failure leaves it empty.
func (a *Authorizer) username(ctx context.Context, g Grant) string {
	if g.IdentityURL == "" {
		return ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.IdentityURL, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		a.cfg.Logger.Debug().Err(err).Msg("Salesforce identity not read")
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.cfg.Logger.Debug().Int("status", resp.StatusCode).Msg("Salesforce identity not read")
		return ""
	}
	var id struct {
		Username string `json:"username"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&id); err != nil {
		return ""
	}
	return id.Username
}

// RevokeError means the grant was forgotten here but Salesforce did not confirm that it
// revoked it.
type RevokeError struct {
	Err error
}

func (e *RevokeError) Error() string {
	return "disconnected here, but Salesforce did not confirm the revocation (" + e.Err.Error() +
		"); remove the app's access in Salesforce Setup (Connected Apps OAuth Usage)"
}

func (e *RevokeError) Unwrap() error { return e.Err }

// Disconnect revokes the grant's refresh token at the login host, which ends every token of
// the grant, and forgets the grant. It holds the refresh lock, so no refresh can rotate the
// token while it is being revoked. When the revocation fails the grant is forgotten anyway
// and a *RevokeError says what to do.
func (a *Authorizer) Disconnect(ctx context.Context) error {
	unlock, err := a.store.lock(ctx, DefaultLockTTL, DefaultLockWait)
	if err != nil {
		return err
	}
	defer unlock()
	g, _, err := a.store.Grant(ctx)
	var revokeErr error
	switch {
	case err == nil:
		revokeErr = revoke(ctx, a.cfg.HTTPClient, g.LoginURL, g.RefreshToken)
	case errors.Is(err, ErrNoGrant):
		return nil
	case errors.Is(err, ErrSecretKey):
		revokeErr = err
	default:
		return err
	}
	if err := a.store.Delete(ctx); err != nil {
		return err
	}
	msg := "Salesforce disconnected; its tokens were revoked"
	if revokeErr != nil {
		revokeErr = &RevokeError{Err: revokeErr}
		msg = "Salesforce disconnected: " + revokeErr.Error()
	}
	a.cfg.Logger.Info().Bool("revoked", revokeErr == nil).Msg("Salesforce disconnected")
	a.event(ctx, EventDisconnected, msg)
	return revokeErr
}

// Status returns the connection's status.
func (a *Authorizer) Status(ctx context.Context) (Status, error) {
	return a.store.Status(ctx)
}

// Events returns up to limit connection events, newest first.
func (a *Authorizer) Events(ctx context.Context, limit int) ([]Event, error) {
	return a.store.Events(ctx, limit)
}
