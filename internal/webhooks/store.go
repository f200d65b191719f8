// Package webhooks receives Skilljar's webhook deliveries, queues the learners they name
// durably in Redis, and manages the subscriptions that send them.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sealer encrypts secrets at rest; *connection.Store is one, so the credentials are sealed
// under the same key as the Salesforce grant.
type Sealer interface {
	Seal(label string, plain []byte) ([]byte, error)
	Open(label string, sealed []byte) ([]byte, error)
}

// StoreConfig tunes the queue. Zero values take the defaults.
type StoreConfig struct {
	// Prefix starts every key; "bf:" when empty.
	Prefix string
	// Debounce is how long a learner waits after its first delivery before the live stream
	// takes it, so a burst of events for one learner costs one lookup. Defaults to 1s.
	Debounce time.Duration
	// DedupeFor is how long a delivery's body is remembered to drop Skilljar's retries of
	// it. Defaults to 24h.
	DedupeFor time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Store is the delivery queue, the receiver's sealed credentials and the catch-up flag, in
// Redis.
type Store struct {
	rdb    redis.UniversalClient
	sealer Sealer
	cfg    StoreConfig
}

// NewStore returns the store; sealer may be nil for a store that only queues.
func NewStore(rdb redis.UniversalClient, sealer Sealer, cfg StoreConfig) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = "bf:"
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = time.Second
	}
	if cfg.DedupeFor <= 0 {
		cfg.DedupeFor = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{rdb: rdb, sealer: sealer, cfg: cfg}
}

// Debounce is the configured debounce.
func (s *Store) Debounce() time.Duration { return s.cfg.Debounce }

func (s *Store) key(name string) string { return s.cfg.Prefix + "webhooks:" + name }

// Credentials are the basic-auth pair Skilljar sends with every delivery.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// ErrNoCredentials means webhooks were never installed (or were removed).
var ErrNoCredentials = errors.New("webhooks are not installed: run `backfill webhooks install`")

// Credentials returns the stored credentials.
func (s *Store) Credentials(ctx context.Context) (Credentials, error) {
	var c Credentials
	if s.sealer == nil {
		return c, errors.New("webhooks: no secret key to open the credentials with (BACKFILL_SECRET_KEY)")
	}
	sealed, err := s.rdb.Get(ctx, s.key("credentials")).Bytes()
	if errors.Is(err, redis.Nil) {
		return c, ErrNoCredentials
	}
	if err != nil {
		return c, fmt.Errorf("read webhook credentials: %w", err)
	}
	plain, err := s.sealer.Open(s.key("credentials"), sealed)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(plain, &c)
}

// EnsureCredentials returns the stored credentials, generating and sealing a fresh pair
// (a 256-bit random password) when there are none.
func (s *Store) EnsureCredentials(ctx context.Context) (Credentials, error) {
	c, err := s.Credentials(ctx)
	if !errors.Is(err, ErrNoCredentials) {
		return c, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return c, err
	}
	c = Credentials{Username: "backfill", Password: base64.RawURLEncoding.EncodeToString(secret)}
	plain, _ := json.Marshal(c)
	sealed, err := s.sealer.Seal(s.key("credentials"), plain)
	if err != nil {
		return c, err
	}
	// Two installs racing keep the first pair, so the subscription and the receiver agree.
	if ok, err := s.rdb.SetNX(ctx, s.key("credentials"), sealed, 0).Result(); err != nil || !ok {
		if err != nil {
			return c, fmt.Errorf("save webhook credentials: %w", err)
		}
		return s.Credentials(ctx)
	}
	return c, nil
}

// DeleteCredentials forgets the credentials: every later delivery is refused.
func (s *Store) DeleteCredentials(ctx context.Context) error {
	return s.rdb.Del(ctx, s.key("credentials")).Err()
}

// Outcomes of Accept.
const (
	Queued    = "queued"    // a learner was queued (or was already waiting)
	Duplicate = "duplicate" // the same body arrived before: a retry
	Ping      = "ping"      // Skilljar's test event
	Unknown   = "unknown"   // no learner could be read from it: kept and counted
)

// unknownKept is how many bodies of unknown shape are kept for an operator to look at.
const unknownKept = 100

var acceptScript = redis.NewScript(`
-- KEYS: dedupe key, pending zset (learner -> due ms), first zset (learner -> first arrival ms),
--       stats hash, unknown list
-- ARGV: now ms, dedupe ttl s, learner key ("" when none), kind hint, body, bodies kept,
--       debounce ms, longest wait ms
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
  return 'duplicate'
end
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[4], 'last_arrival_ms', now)
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], 'NX', now, ARGV[3])
  local first = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[3]))
  redis.call('ZADD', KEYS[2], math.min(first + tonumber(ARGV[8]), now + tonumber(ARGV[7])), ARGV[3])
  redis.call('HINCRBY', KEYS[4], 'queued', 1)
  return 'queued'
end
if ARGV[4] == 'ping' then
  redis.call('HINCRBY', KEYS[4], 'ping', 1)
  return 'ping'
end
redis.call('LPUSH', KEYS[5], ARGV[5])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[6]) - 1)
redis.call('HINCRBY', KEYS[4], 'unknown', 1)
return 'unknown'
`)

// longestWait bounds, in debounces, how long deliveries that keep coming for one learner
// can hold it back.
const longestWait = 10

// Accept records one authenticated delivery before it is answered: a learner named by it
// joins the pending set once, however many deliveries name it, and is due a debounce after
// the last of them (at most longestWait debounces after the first); a body seen before is
// dropped as Skilljar's retry; anything else is kept and counted. digest identifies the body.
func (s *Store) Accept(ctx context.Context, digest string, d Delivery, body []byte) (string, error) {
	hint := ""
	if d.Ping {
		hint = "ping"
	}
	out, err := acceptScript.Run(ctx, s.rdb,
		[]string{s.key("seen:" + digest), s.key("pending"), s.key("first"), s.key("stats"), s.key("unknown")},
		s.cfg.Now().UnixMilli(), int(s.cfg.DedupeFor.Seconds()), d.Learner, hint, body, unknownKept,
		s.cfg.Debounce.Milliseconds(), longestWait*s.cfg.Debounce.Milliseconds()).Text()
	if err != nil {
		return "", fmt.Errorf("queue webhook delivery: %w", err)
	}
	return out, nil
}

var claimScript = redis.NewScript(`
-- KEYS: claim list, pending zset, first zset
-- ARGV: now ms, max, claim ttl s
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('LRANGE', KEYS[1], 0, -1) end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
redis.call('ZREM', KEYS[2], unpack(ids))
redis.call('ZREM', KEYS[3], unpack(ids))
redis.call('RPUSH', KEYS[1], unpack(ids))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ids
`)

// claimTTL keeps a claimed page long enough for a run parked on a Salesforce outage to
// resume and find the same learners.
const claimTTL = 7 * 24 * time.Hour

// Claim takes up to max learners that are due out of the pending set, into the list
// named claim, and returns them. Claiming the same name again returns the same learners, so
// a page that is retried after a crash writes exactly what it claimed. A learner named by a
// delivery after it was claimed is queued again, and its change written by a later page.
func (s *Store) Claim(ctx context.Context, claim string, max int) ([]string, error) {
	ids, err := claimScript.Run(ctx, s.rdb, []string{s.key("claim:" + claim), s.key("pending"), s.key("first")},
		s.cfg.Now().UnixMilli(), max, int(claimTTL.Seconds())).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("claim queued learners: %w", err)
	}
	return ids, nil
}

// Due reports whether a learner is due, so a drain would find work, and whether others
// wait for their debounce.
func (s *Store) Due(ctx context.Context) (due, waiting bool, err error) {
	pipe := s.rdb.Pipeline()
	ready := pipe.ZCount(ctx, s.key("pending"), "-inf", strconv.FormatInt(s.cfg.Now().UnixMilli(), 10))
	all := pipe.ZCard(ctx, s.key("pending"))
	if _, err := pipe.Exec(ctx); err != nil {
		return false, false, fmt.Errorf("read the webhook queue: %w", err)
	}
	return ready.Val() > 0, all.Val() > ready.Val(), nil
}

// QueueStats is what the queue has seen.
type QueueStats struct {
	Pending int64 `json:"pending"`
	// OldestPending is when the oldest change still waiting arrived: how far behind
	// Salesforce is. Nil when nothing waits.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
	// LastArrival is when the last delivery arrived.
	LastArrival *time.Time       `json:"last_arrival,omitempty"`
	Deliveries  map[string]int64 `json:"deliveries"`
	// UnknownBodies are the latest deliveries no learner could be read from, newest first.
	UnknownBodies []string `json:"unknown_bodies,omitempty"`
}

// Stats reads the queue's figures.
func (s *Store) Stats(ctx context.Context) (QueueStats, error) {
	pipe := s.rdb.Pipeline()
	n := pipe.ZCard(ctx, s.key("pending"))
	oldest := pipe.ZRangeWithScores(ctx, s.key("first"), 0, 0)
	stats := pipe.HGetAll(ctx, s.key("stats"))
	unknown := pipe.LRange(ctx, s.key("unknown"), 0, 9)
	if _, err := pipe.Exec(ctx); err != nil {
		return QueueStats{}, fmt.Errorf("read webhook queue: %w", err)
	}
	q := QueueStats{Pending: n.Val(), Deliveries: map[string]int64{}, UnknownBodies: unknown.Val()}
	if o := oldest.Val(); len(o) > 0 {
		t := time.UnixMilli(int64(o[0].Score)).UTC()
		q.OldestPending = &t
	}
	for k, v := range stats.Val() {
		n, _ := strconv.ParseInt(v, 10, 64)
		if k == "last_arrival_ms" {
			t := time.UnixMilli(n).UTC()
			q.LastArrival = &t
			continue
		}
		q.Deliveries[k] = n
	}
	return q, nil
}

// MarkFullDetection asks the next catch-up to compare every learner, not only those whose
// fingerprint moved: deliveries were lost while a subscription was off.
func (s *Store) MarkFullDetection(ctx context.Context) error {
	return s.rdb.Set(ctx, s.key("full-detection"), "1", 0).Err()
}

// TakeFullDetection reports whether a full detection was asked for, and clears the request.
func (s *Store) TakeFullDetection(ctx context.Context) (bool, error) {
	n, err := s.rdb.Del(ctx, s.key("full-detection")).Result()
	return n > 0, err
}

// saveStatus keeps the last observed subscriptions for /metrics and the page.
func (s *Store) saveStatus(ctx context.Context, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, s.key("status"), b, 0).Err()
}

// LastStatus is the status the last install, status or remove observed; zero when none did.
func (s *Store) LastStatus(ctx context.Context) (Status, error) {
	var st Status
	b, err := s.rdb.Get(ctx, s.key("status")).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}
