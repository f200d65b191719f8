package connection

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reasons a callback's state is refused.
const (
	StateMissing = "missing"
	StateUnknown = "unknown"
	StateExpired = "expired"
	StateReused  = "reused"
)

// StateError is a callback whose OAuth state cannot be accepted.
type StateError struct {
	Reason string // StateMissing, StateUnknown, StateExpired or StateReused
}

func (e *StateError) Error() string {
	var why string
	switch e.Reason {
	case StateMissing:
		why = "the Salesforce callback carried no state parameter"
	case StateExpired:
		why = "the OAuth state has expired: the Salesforce login took too long"
	case StateReused:
		why = "the OAuth state was already used: each connect attempt completes once"
	default:
		why = "the OAuth state is unknown: this callback did not come from a connect attempt started here"
	}
	return "OAuth state " + e.Reason + ": " + why + "; start again at /salesforce/connect"
}

// stateMemory is how long a used or expired state is remembered after its TTL, so a late or
// repeated callback is told "expired" or "reused" rather than "unknown".
const stateMemory = time.Hour

// The state's key is a hash of it: the key space never holds a value an attacker could
// replay, and the verifier is deleted as soon as the state is taken.
func (s *Store) stateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return s.key + ":oauth-state:" + hex.EncodeToString(sum[:])
}

// saveState remembers a connect attempt's state with its PKCE verifier; it expires ttl after
// now.
func (s *Store) saveState(ctx context.Context, state string, a attempt, now time.Time, ttl time.Duration) error {
	key := s.stateKey(state)
	expires := now.Add(ttl).UnixMilli()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "verifier", a.verifier, "environment", a.environment, "login", a.loginURL, "expires", expires, "used", 0)
		p.PExpire(ctx, key, ttl+stateMemory)
		return nil
	})
	if err != nil {
		return fmt.Errorf("save OAuth state: %w", err)
	}
	return nil
}

// takeStateScript checks and consumes a state in one step, so two callbacks racing with the
// same state cannot both get the verifier.
var takeStateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
if redis.call('HGET', KEYS[1], 'used') == '1' then return {'reused'} end
if tonumber(redis.call('HGET', KEYS[1], 'expires')) < tonumber(ARGV[1]) then return {'expired'} end
local a = redis.call('HMGET', KEYS[1], 'verifier', 'environment', 'login')
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('HDEL', KEYS[1], 'verifier')
return {'ok', a[1] or '', a[2] or '', a[3] or ''}`)

// attempt is what a connect attempt remembers until its callback: the PKCE verifier and the
// environment it was started for, so the code is exchanged at the same login host.
type attempt struct {
	verifier, environment, loginURL string
}

// takeState consumes state and returns its attempt, or a *StateError saying why not; the
// state has expired when its expiry is before now.
func (s *Store) takeState(ctx context.Context, state string, now time.Time) (attempt, error) {
	if state == "" {
		return attempt{}, &StateError{Reason: StateMissing}
	}
	res, err := takeStateScript.Run(ctx, s.rdb, []string{s.stateKey(state)}, now.UnixMilli()).StringSlice()
	if err != nil {
		return attempt{}, fmt.Errorf("check OAuth state: %w", err)
	}
	switch {
	case len(res) == 4 && res[0] == "ok":
		return attempt{verifier: res[1], environment: res[2], loginURL: res[3]}, nil
	case len(res) == 1:
		return attempt{}, &StateError{Reason: res[0]}
	}
	return attempt{}, errors.New("check OAuth state: unexpected answer from Redis")
}
