// Package connection keeps the Salesforce connection: the OAuth grant encrypted in Redis,
// a token source that refreshes it safely under refresh-token rotation (one refresher at a
// time across every process, the rotated token saved before it is used), and the
// connection's status for operators.
package connection

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// States of a connection.
const (
	Connected    = "connected"
	NeedsReauth  = "needs_reauth"
	Disconnected = "disconnected"
)

// Grant is what an OAuth grant gives: kept encrypted, never logged.
type Grant struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	InstanceURL  string `json:"instance_url"`
	// IdentityURL is the token response's id: {login}/id/{orgId}/{userId}.
	IdentityURL string `json:"identity_url"`
	Scope       string `json:"scope,omitempty"`
	// LoginURL is the host the grant was obtained from; refreshes go there.
	LoginURL string    `json:"login_url"`
	IssuedAt time.Time `json:"issued_at"`
}

// Status is the connection as operators see it; it holds no secret.
type Status struct {
	State       string     `json:"state"`
	OrgID       string     `json:"org_id,omitempty"`
	UserID      string     `json:"user_id,omitempty"`
	Username    string     `json:"username,omitempty"`
	Environment string     `json:"environment,omitempty"`
	InstanceURL string     `json:"instance_url,omitempty"`
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
	LastRefresh *time.Time `json:"last_refresh,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// record is what is stored: the status in clear, the grant sealed.
type record struct {
	Status Status `json:"status"`
	// Sealed is the grant's JSON encrypted with AES-256-GCM, nonce first.
	Sealed []byte `json:"sealed,omitempty"`
	// Version counts grant changes, so a reader can tell a rotation happened.
	Version int64 `json:"version"`
}

// Store reads and writes the connection in Redis.
type Store struct {
	rdb  redis.UniversalClient
	aead cipher.AEAD
	key  string
}

// NewStore returns a store that seals grants with the 32-byte key.
func NewStore(rdb redis.UniversalClient, secretKey []byte, prefix string) (*Store, error) {
	if len(secretKey) != 32 {
		return nil, errors.New("connection: the secret key must be 32 bytes (BACKFILL_SECRET_KEY)")
	}
	block, err := aes.NewCipher(secretKey)
	if err != nil {
		return nil, fmt.Errorf("connection: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("connection: %w", err)
	}
	if prefix == "" {
		prefix = "bf:"
	}
	return &Store{rdb: rdb, aead: aead, key: prefix + "connection"}, nil
}

// ErrNoGrant means no Salesforce grant is stored: someone has to connect first.
var ErrNoGrant = errors.New("no Salesforce connection: connect at /salesforce/connect")

func (s *Store) read(ctx context.Context) (record, error) {
	var r record
	raw, err := s.rdb.Get(ctx, s.key).Bytes()
	if errors.Is(err, redis.Nil) {
		r.Status.State = Disconnected
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read connection: %w", err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("decode connection: %w", err)
	}
	return r, nil
}

func (s *Store) write(ctx context.Context, r record) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode connection: %w", err)
	}
	if err := s.rdb.Set(ctx, s.key, raw, 0).Err(); err != nil {
		return fmt.Errorf("save connection: %w", err)
	}
	return nil
}

func (s *Store) seal(g Grant) ([]byte, error) {
	plain, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(s.key)), nil
}

func (s *Store) open(sealed []byte) (Grant, error) {
	var g Grant
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return g, errors.New("sealed grant is too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(s.key))
	if err != nil {
		return g, errors.New("the stored Salesforce grant cannot be decrypted: BACKFILL_SECRET_KEY differs from the key it was saved with; reconnect Salesforce")
	}
	return g, json.Unmarshal(plain, &g)
}

// Grant returns the stored grant and its version.
func (s *Store) Grant(ctx context.Context) (Grant, int64, error) {
	r, err := s.read(ctx)
	if err != nil {
		return Grant{}, 0, err
	}
	if len(r.Sealed) == 0 {
		return Grant{}, r.Version, ErrNoGrant
	}
	g, err := s.open(r.Sealed)
	return g, r.Version, err
}

// Status returns the connection's status.
func (s *Store) Status(ctx context.Context) (Status, error) {
	r, err := s.read(ctx)
	return r.Status, err
}

// Connect stores a new grant from the authorization flow and marks the connection
// connected.
func (s *Store) Connect(ctx context.Context, g Grant, st Status) error {
	sealed, err := s.seal(g)
	if err != nil {
		return fmt.Errorf("seal grant: %w", err)
	}
	r, err := s.read(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	st.State, st.ConnectedAt, st.LastError, st.LastErrorAt = Connected, &now, "", nil
	st.InstanceURL = g.InstanceURL
	return s.write(ctx, record{Status: st, Sealed: sealed, Version: r.Version + 1})
}

// rotate stores refreshed tokens; the caller holds the refresh lock.
func (s *Store) rotate(ctx context.Context, g Grant) (int64, error) {
	sealed, err := s.seal(g)
	if err != nil {
		return 0, fmt.Errorf("seal grant: %w", err)
	}
	r, err := s.read(ctx)
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	r.Sealed, r.Version = sealed, r.Version+1
	r.Status.State, r.Status.LastRefresh, r.Status.InstanceURL = Connected, &now, g.InstanceURL
	return r.Version, s.write(ctx, r)
}

// fail records an authentication failure and, when reauth is true, that a person has to
// connect again.
func (s *Store) fail(ctx context.Context, msg string, reauth bool) error {
	r, err := s.read(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	r.Status.LastError, r.Status.LastErrorAt = msg, &now
	if reauth && len(r.Sealed) > 0 {
		r.Status.State = NeedsReauth
	}
	return s.write(ctx, r)
}

// Delete forgets the grant.
func (s *Store) Delete(ctx context.Context) error {
	if err := s.rdb.Del(ctx, s.key).Err(); err != nil {
		return fmt.Errorf("delete connection: %w", err)
	}
	return nil
}
