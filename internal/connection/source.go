package connection

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// SourceConfig configures a token source.
type SourceConfig struct {
	ClientID, ClientSecret string
	// HTTPClient sends token requests. Defaults to one with a 30s timeout.
	HTTPClient *http.Client
	// LockTTL bounds how long a crashed refresher can block the others; a live one keeps
	// extending the lock. Defaults to DefaultLockTTL.
	LockTTL time.Duration
	// LockWait bounds how long a caller waits for another process's refresh. Defaults to
	// DefaultLockWait.
	LockWait time.Duration
	// RefreshAfter, when positive, refreshes a grant this long after its access token was
	// issued, before Salesforce's session timeout ends it, so calls rarely meet a 401.
	// Salesforce sends no expires_in, so set it below the org's session timeout (Setup →
	// Session Settings, 15 minutes to 24 hours). Zero, the default, refreshes only after a
	// 401. Every refresh rotates the refresh token, which is safe here but not free.
	RefreshAfter time.Duration
	// Now is the clock RefreshAfter is measured on. Defaults to time.Now.
	Now func() time.Time
	// Logger gets connection events; token values never reach it.
	Logger zerolog.Logger
	// OnEvent, if set, records connection events for operators (kind, message); use
	// Store.EventRecorder to feed the connection's activity log.
	OnEvent func(ctx context.Context, kind, message string)
}

// Source hands Salesforce credentials to the data client and refreshes them on a 401.
// It implements salesforce.TokenSource.
type Source struct {
	store *Store
	cfg   SourceConfig

	mu     sync.Mutex
	cached Grant
	loaded bool
}

var _ salesforce.TokenSource = (*Source)(nil)

// NewSource returns a token source over the store.
func NewSource(store *Store, cfg SourceConfig) *Source {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = DefaultLockWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{store: store, cfg: cfg}
}

func creds(g Grant) salesforce.Credentials {
	return salesforce.Credentials{AccessToken: g.AccessToken, InstanceURL: g.InstanceURL}
}

// authErr marks a stored-grant problem only a person can fix, so runs wait for them.
func authErr(err error) error {
	if errors.Is(err, ErrNoGrant) || errors.Is(err, ErrSecretKey) {
		return fmt.Errorf("%w: %w", salesforce.ErrAuth, err)
	}
	return err
}

// Token returns the current credentials, from memory once loaded, refreshing them first when
// RefreshAfter says they are due.
func (s *Source) Token(ctx context.Context) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		g, _, err := s.store.Grant(ctx)
		if err != nil {
			return salesforce.Credentials{}, authErr(err)
		}
		s.cached, s.loaded = g, true
	}
	if s.cfg.RefreshAfter <= 0 || s.cfg.Now().Sub(s.cached.IssuedAt) < s.cfg.RefreshAfter {
		return creds(s.cached), nil
	}
	c, err := s.refresh(ctx, creds(s.cached))
	if err != nil && !errors.Is(err, salesforce.ErrAuth) {
		// The current token may well live on: let Salesforce's 401 decide.
		s.cfg.Logger.Warn().Err(err).Msg("early Salesforce token refresh failed; the current token stays in use")
		return creds(s.cached), nil
	}
	return c, err
}

// Refresh is called with credentials Salesforce refused. It takes the cluster-wide refresh
// lock, then uses the stored grant if another process already replaced the refused one, and
// otherwise refreshes, saving the rotated refresh token before the new access token is used.
func (s *Source) Refresh(ctx context.Context, stale salesforce.Credentials) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh(ctx, stale)
}

// refresh does Refresh's work; the caller holds s.mu.
func (s *Source) refresh(ctx context.Context, stale salesforce.Credentials) (salesforce.Credentials, error) {
	unlock, err := s.store.lock(ctx, s.cfg.LockTTL, s.cfg.LockWait)
	if err != nil {
		return salesforce.Credentials{}, err
	}
	defer unlock()

	r, err := s.store.read(ctx, s.store.rdb)
	if err != nil {
		return salesforce.Credentials{}, err
	}
	if len(r.Sealed) == 0 {
		s.loaded = false
		return salesforce.Credentials{}, authErr(ErrNoGrant)
	}
	g, err := s.store.open(r.Sealed)
	if err != nil {
		s.loaded = false
		return salesforce.Credentials{}, authErr(err)
	}
	if g.AccessToken != stale.AccessToken {
		// Another process refreshed (or someone reconnected) meanwhile: use theirs.
		s.cached, s.loaded = g, true
		return creds(g), nil
	}
	if r.Status.State == NeedsReauth {
		// The grant is known dead; presenting its refresh token again could only make matters worse.
		return salesforce.Credentials{}, fmt.Errorf("%w: the connection needs re-authentication: %s", salesforce.ErrAuth, r.Status.LastError)
	}
	next, err := s.exchange(ctx, g)
	if err != nil {
		return salesforce.Credentials{}, s.refreshFailed(ctx, err, r.Version)
	}
	// Persist before use: if the rotated refresh token were lost, the next refresh would
	// present the old one, and Salesforce revokes the whole grant on reuse.
	switch err := s.persist(ctx, next, r.Version); {
	case errors.Is(err, errSuperseded):
		return s.superseded(ctx, next)
	case err != nil:
		s.cached, s.loaded = next, true
		s.cfg.Logger.Error().Err(err).Msg("rotated Salesforce tokens could not be saved; this process keeps them in memory")
		return salesforce.Credentials{}, fmt.Errorf("save rotated Salesforce tokens: %w", err)
	}
	s.cached, s.loaded = next, true
	s.cfg.Logger.Info().Str("instance_url", next.InstanceURL).Bool("rotated", next.RefreshToken != g.RefreshToken).Msg("Salesforce access token refreshed")
	s.event(ctx, EventTokenRefreshed, "Salesforce access token refreshed")
	return creds(next), nil
}

// superseded handles a refresh that finished after a person reconnected or disconnected: the
// refreshed grant belongs to a connection nobody wants any more, so it is revoked (it would
// otherwise count against Salesforce's five grants per user) and the stored one is used.
func (s *Source) superseded(ctx context.Context, orphan Grant) (salesforce.Credentials, error) {
	if err := revoke(ctx, s.cfg.HTTPClient, orphan.LoginURL, orphan.RefreshToken); err != nil {
		s.cfg.Logger.Warn().Err(err).Msg("could not revoke a Salesforce grant replaced during its refresh")
	}
	g, _, err := s.store.Grant(ctx)
	if err != nil {
		s.loaded = false
		return salesforce.Credentials{}, authErr(err)
	}
	s.cached, s.loaded = g, true
	return creds(g), nil
}

func (s *Source) persist(ctx context.Context, g Grant, version int64) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.store.rotate(ctx, g, version, s.cfg.Now()); err == nil || errors.Is(err, errSuperseded) {
			return err
		}
		if serr := clock.Sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond); serr != nil {
			return err
		}
	}
	return err
}

// exchange performs the refresh-token grant against the login host the grant came from.
func (s *Source) exchange(ctx context.Context, g Grant) (Grant, error) {
	oc := oauthConfig(s.cfg.ClientID, s.cfg.ClientSecret, g.LoginURL, "")
	tok, err := oc.TokenSource(withClient(ctx, s.cfg.HTTPClient), &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
	if err != nil {
		return Grant{}, tokenError(err)
	}
	return merge(g, tok), nil
}

// refreshFailed classifies a failed refresh once: invalid_grant means the grant is gone and a
// person must reconnect; anything else (network, 5xx) is worth a retry later.
func (s *Source) refreshFailed(ctx context.Context, err error, version int64) error {
	var te *TokenError
	if !errors.As(err, &te) || (te.Code != "invalid_grant" && te.Code != "invalid_client") {
		msg := "refresh Salesforce token: " + err.Error()
		if ferr := s.store.fail(ctx, msg, false, version); ferr != nil {
			s.cfg.Logger.Error().Err(ferr).Msg("could not record the connection failure")
		}
		s.cfg.Logger.Warn().Err(err).Msg("Salesforce token refresh failed; it will be tried again")
		s.event(ctx, EventRefreshFailed, msg)
		return fmt.Errorf("refresh Salesforce token: %w", err)
	}
	msg := te.Error()
	switch {
	case te.Code == "invalid_client":
		msg += ": the client id or secret is wrong; check SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET"
	case strings.Contains(te.Description, "expired access/refresh token"):
		msg += ": the stored refresh token was already used or revoked (with refresh-token rotation a reused token revokes the whole grant; a revoked integration user or the 5-grant limit do the same); reconnect Salesforce"
	default:
		msg += "; reconnect Salesforce"
	}
	if ferr := s.store.fail(ctx, msg, true, version); ferr != nil {
		s.cfg.Logger.Error().Err(ferr).Msg("could not record the connection failure")
	}
	s.cfg.Logger.Warn().Str("error_code", te.Code).Msg(msg)
	s.event(ctx, EventNeedsReauth, msg)
	return fmt.Errorf("%w: %s", salesforce.ErrAuth, msg)
}

func (s *Source) event(ctx context.Context, kind, message string) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ctx, kind, message)
	}
}
