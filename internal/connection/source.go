package connection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

// SourceConfig configures a token source.
type SourceConfig struct {
	ClientID, ClientSecret string
	// HTTPClient sends token requests. Defaults to one with a 30s timeout.
	HTTPClient *http.Client
	// LockTTL bounds how long one refresher may hold the lock. Defaults to 30s.
	LockTTL time.Duration
	// LockWait bounds how long a caller waits for another process's refresh. Defaults to 60s.
	LockWait time.Duration
	// Logger gets connection events; token values never reach it.
	Logger zerolog.Logger
	// OnEvent, if set, records connection events for operators (kind, message).
	OnEvent func(ctx context.Context, kind, message string)
}

// Source hands Salesforce credentials to the data client and refreshes them on a 401.
// It implements salesforce.TokenSource.
type Source struct {
	store *Store
	rdb   redis.UniversalClient
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
		cfg.LockTTL = 30 * time.Second
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 60 * time.Second
	}
	return &Source{store: store, rdb: store.rdb, cfg: cfg}
}

func creds(g Grant) salesforce.Credentials {
	return salesforce.Credentials{AccessToken: g.AccessToken, InstanceURL: g.InstanceURL}
}

// Token returns the current credentials, from memory once loaded.
func (s *Source) Token(ctx context.Context) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return creds(s.cached), nil
	}
	g, _, err := s.store.Grant(ctx)
	if errors.Is(err, ErrNoGrant) {
		return salesforce.Credentials{}, fmt.Errorf("%w: %w", salesforce.ErrAuth, err)
	}
	if err != nil {
		return salesforce.Credentials{}, err
	}
	s.cached, s.loaded = g, true
	return creds(g), nil
}

// Refresh is called with credentials Salesforce refused. It takes the cluster-wide refresh
// lock, then uses the stored grant if another process already replaced the refused one, and
// otherwise refreshes, saving the rotated refresh token before the new access token is used.
func (s *Source) Refresh(ctx context.Context, stale salesforce.Credentials) (salesforce.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return salesforce.Credentials{}, err
	}
	defer unlock()

	g, _, err := s.store.Grant(ctx)
	if errors.Is(err, ErrNoGrant) {
		s.loaded = false
		return salesforce.Credentials{}, fmt.Errorf("%w: %w", salesforce.ErrAuth, err)
	}
	if err != nil {
		return salesforce.Credentials{}, err
	}
	if g.AccessToken != stale.AccessToken {
		// Another process refreshed (or someone reconnected) meanwhile: use theirs.
		s.cached, s.loaded = g, true
		return creds(g), nil
	}
	st, err := s.store.Status(ctx)
	if err != nil {
		return salesforce.Credentials{}, err
	}
	if st.State == NeedsReauth {
		// The grant is known dead; presenting its refresh token again could only make matters worse.
		return salesforce.Credentials{}, fmt.Errorf("%w: the connection needs re-authentication: %s", salesforce.ErrAuth, st.LastError)
	}
	next, err := s.exchange(ctx, g)
	if err != nil {
		return salesforce.Credentials{}, s.refreshFailed(ctx, err)
	}
	// Persist before use: if the rotated refresh token were lost, the next refresh would
	// present the old one, and Salesforce revokes the whole grant on reuse.
	if err := s.persist(ctx, next); err != nil {
		s.cached, s.loaded = next, true
		s.cfg.Logger.Error().Err(err).Msg("rotated Salesforce tokens could not be saved; this process keeps them in memory")
		return salesforce.Credentials{}, fmt.Errorf("save rotated Salesforce tokens: %w", err)
	}
	s.cached, s.loaded = next, true
	s.cfg.Logger.Info().Str("instance_url", next.InstanceURL).Bool("rotated", next.RefreshToken != g.RefreshToken).Msg("Salesforce access token refreshed")
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ctx, "token_refreshed", "Salesforce access token refreshed")
	}
	return creds(next), nil
}

func (s *Source) persist(ctx context.Context, g Grant) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if _, err = s.store.rotate(ctx, g); err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return err
}

// exchange performs the refresh-token grant against the login host the grant came from.
func (s *Source) exchange(ctx context.Context, g Grant) (Grant, error) {
	oc := &oauth2.Config{
		ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: g.LoginURL + "/services/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := oc.TokenSource(ctx, &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
	if err != nil {
		return Grant{}, err
	}
	next := g
	next.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		next.RefreshToken = tok.RefreshToken
	}
	if u, _ := tok.Extra("instance_url").(string); u != "" {
		next.InstanceURL = u
	}
	if id, _ := tok.Extra("id").(string); id != "" {
		next.IdentityURL = id
	}
	next.IssuedAt = time.Now().UTC()
	return next, nil
}

// refreshFailed classifies a failed refresh once: invalid_grant means the grant is gone and a
// person must reconnect; anything else (network, 5xx) is worth a retry later.
func (s *Source) refreshFailed(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || (re.ErrorCode != "invalid_grant" && re.ErrorCode != "invalid_client") {
		return fmt.Errorf("refresh Salesforce token: %w", err)
	}
	msg := fmt.Sprintf("Salesforce refused the refresh (%s: %s)", re.ErrorCode, re.ErrorDescription)
	switch {
	case re.ErrorCode == "invalid_client":
		msg += ": the client id or secret is wrong; check SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET"
	case strings.Contains(re.ErrorDescription, "expired access/refresh token"):
		msg += ": the stored refresh token was already used or revoked (with refresh-token rotation a reused token revokes the whole grant; a revoked integration user or the 5-grant limit do the same); reconnect Salesforce"
	default:
		msg += "; reconnect Salesforce"
	}
	if ferr := s.store.fail(ctx, msg, true); ferr != nil {
		s.cfg.Logger.Error().Err(ferr).Msg("could not record the connection failure")
	}
	s.cfg.Logger.Warn().Str("error_code", re.ErrorCode).Msg(msg)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ctx, "needs_reauth", msg)
	}
	return fmt.Errorf("%w: %s", salesforce.ErrAuth, msg)
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// lock takes the cluster-wide refresh lock, waiting while another process holds it.
func (s *Source) lock(ctx context.Context) (unlock func(), err error) {
	key := s.store.key + ":refresh-lock"
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(b)
	deadline := time.Now().Add(s.cfg.LockWait)
	wait := 10 * time.Millisecond
	for {
		ok, err := s.rdb.SetNX(ctx, key, token, s.cfg.LockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("take the token refresh lock: %w", err)
		}
		if ok {
			return func() {
				// A fresh context: the caller's may be done, and a stuck lock would block
				// every refresh for LockTTL.
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = unlockScript.Run(c, s.rdb, []string{key}, token).Err()
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("another process has held the token refresh lock for over %s", s.cfg.LockWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}
