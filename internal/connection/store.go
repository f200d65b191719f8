// Package connection keeps the Salesforce connection: the OAuth web-server flow with PKCE,
// the grant encrypted in Redis, a token source that refreshes it safely under refresh-token
// rotation (one refresher at a time across every process, the rotated token saved before it
// is used), and the connection's status and events for operators.
package connection

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/rediskey"
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
	// LoginURL is the host the grant was obtained from; refreshes and revocation go there.
	LoginURL string `json:"login_url"`
	// IssuedAt is when the access token was issued; SourceConfig.RefreshAfter counts from it.
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
	// Version counts grant changes and never goes back, not even across a disconnect, so a
	// writer can tell that the grant it read has been replaced since.
	Version int64 `json:"version"`
}

// Store reads and writes the connection in Redis.
type Store struct {
	rdb  redis.UniversalClient
	aead cipher.AEAD
	key  string
}

// NewStore returns a store that seals grants with the 32-byte key. Keys start with prefix,
// rediskey.Prefix when empty.
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
		prefix = rediskey.Prefix
	}
	return &Store{rdb: rdb, aead: aead, key: prefix + "connection"}, nil
}

// ErrNoGrant means no Salesforce grant is stored: someone has to connect first.
var ErrNoGrant = errors.New("no Salesforce connection: connect at /salesforce/connect")

// ErrSecretKey means the stored grant was sealed under another key than this process has.
var ErrSecretKey = errors.New("the stored Salesforce grant cannot be decrypted: BACKFILL_SECRET_KEY differs from the key it was saved with; " +
	"set the key it was saved with, or reconnect Salesforce")

// errSuperseded means the grant changed (a reconnect or a disconnect) after the caller read it.
var errSuperseded = errors.New("the Salesforce grant was replaced meanwhile")

// errUnchanged lets an update function decline to write.
var errUnchanged = errors.New("unchanged")

func (s *Store) read(ctx context.Context, rdb redis.Cmdable) (record, error) {
	var r record
	raw, err := rdb.Get(ctx, s.key).Bytes()
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

// update applies change to the stored record atomically: a concurrent writer makes it read
// and apply again, so no writer ever overwrites a change it did not see.
func (s *Store) update(ctx context.Context, change func(r *record) error) error {
	txn := func(tx *redis.Tx) error {
		r, err := s.read(ctx, tx)
		if err != nil {
			return err
		}
		if err := change(&r); err != nil {
			return err
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode connection: %w", err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			return p.Set(ctx, s.key, raw, 0).Err()
		})
		return err
	}
	for attempt := 0; attempt < 20; attempt++ {
		err := s.rdb.Watch(ctx, txn, s.key)
		switch {
		case errors.Is(err, errUnchanged):
			return nil
		case errors.Is(err, redis.TxFailedErr):
			continue
		case err != nil:
			return fmt.Errorf("save connection: %w", err)
		}
		return nil
	}
	return errors.New("save connection: too many concurrent changes")
}

func (s *Store) seal(g Grant) ([]byte, error) {
	plain, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	return s.Seal(s.key, plain)
}

func (s *Store) open(sealed []byte) (Grant, error) {
	var g Grant
	plain, err := s.Open(s.key, sealed)
	if err != nil {
		return g, err
	}
	return g, json.Unmarshal(plain, &g)
}

// Grant returns the stored grant and its version. It fails with ErrNoGrant when nobody is
// connected and with ErrSecretKey when the grant was sealed under another key.
func (s *Store) Grant(ctx context.Context) (Grant, int64, error) {
	r, err := s.read(ctx, s.rdb)
	if err != nil {
		return Grant{}, 0, err
	}
	if len(r.Sealed) == 0 {
		return Grant{}, r.Version, ErrNoGrant
	}
	g, err := s.open(r.Sealed)
	return g, r.Version, err
}

// Status returns the connection's status. A grant this process cannot decrypt is reported
// as needs_reauth with ErrSecretKey's advice, since no call can be made with it.
func (s *Store) Status(ctx context.Context) (Status, error) {
	r, err := s.read(ctx, s.rdb)
	if err != nil {
		return Status{}, err
	}
	if len(r.Sealed) > 0 {
		if _, err := s.open(r.Sealed); errors.Is(err, ErrSecretKey) {
			r.Status.State, r.Status.LastError = NeedsReauth, err.Error()
		}
	}
	return r.Status, nil
}

// Connect stores a new grant from the authorization flow and marks the connection
// connected.
func (s *Store) Connect(ctx context.Context, g Grant, st Status) error {
	sealed, err := s.seal(g)
	if err != nil {
		return fmt.Errorf("seal grant: %w", err)
	}
	return s.update(ctx, func(r *record) error {
		now := time.Now().UTC()
		st.State, st.ConnectedAt, st.LastError, st.LastErrorAt = Connected, &now, "", nil
		st.InstanceURL, st.LastRefresh = g.InstanceURL, nil
		*r = record{Status: st, Sealed: sealed, Version: r.Version + 1}
		return nil
	})
}

// rotate stores refreshed tokens in place of the grant at version, refreshed at now; the
// caller holds the refresh lock. It fails with errSuperseded when the grant changed meanwhile.
func (s *Store) rotate(ctx context.Context, g Grant, version int64, now time.Time) error {
	sealed, err := s.seal(g)
	if err != nil {
		return fmt.Errorf("seal grant: %w", err)
	}
	return s.update(ctx, func(r *record) error {
		if r.Version != version || len(r.Sealed) == 0 {
			return errSuperseded
		}
		now := now.UTC()
		r.Sealed, r.Version = sealed, r.Version+1
		r.Status.State, r.Status.LastRefresh, r.Status.InstanceURL = Connected, &now, g.InstanceURL
		return nil
	})
}

// fail records an authentication failure of the grant at version and, when reauth is true,
// that a person has to connect again. A failure of a grant since replaced is not recorded:
// it says nothing about the current one.
func (s *Store) fail(ctx context.Context, msg string, reauth bool, version int64) error {
	return s.update(ctx, func(r *record) error {
		if r.Version != version || len(r.Sealed) == 0 {
			return errUnchanged
		}
		now := time.Now().UTC()
		r.Status.LastError, r.Status.LastErrorAt = msg, &now
		if reauth {
			r.Status.State = NeedsReauth
		}
		return nil
	})
}

// Delete forgets the grant. The record stays, reduced to its version, so a refresh that was
// under way cannot write the forgotten grant back.
func (s *Store) Delete(ctx context.Context) error {
	return s.update(ctx, func(r *record) error {
		*r = record{Status: Status{State: Disconnected}, Version: r.Version + 1}
		return nil
	})
}
