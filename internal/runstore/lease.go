package runstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A claimed run is held: its id is in the held set and a lease key, valued with the holder's
// fence, expires unless the holder renews it. Only a holder that died leaves a held run
// without a lease, because a slice releases the run whenever it returns (a retry is then
// asynq's to schedule, durably). A live worker takes such a run over in seconds, instead of
// waiting for asynq's own lease recovery, which takes a minute or more.

func (s *Store) leaseKey(id string) string { return s.runKey(id) + ":lease" }
func (s *Store) heldKey() string           { return s.opts.Prefix + "held" }

// LeaseTTL is how long a lease lasts without a renewal.
func (s *Store) LeaseTTL() time.Duration { return s.opts.Lease }

func (s *Store) leaseMS() int64 { return max(s.opts.Lease.Milliseconds(), 1) }

var renewScript = redis.NewScript(`
-- KEYS: run hash, lease, held set; ARGV: fence, lease ms, run id
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 'fenced' end
-- The fence is still ours, so nobody took the run over even if the lease lapsed meanwhile.
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 'ok'
`)

// Renew extends the lease of the slice holding fence. It returns ErrFenced when the run was
// taken over: that slice can no longer commit and should stop.
func (s *Store) Renew(ctx context.Context, id string, fence int64) error {
	res, err := renewScript.Run(ctx, s.rdb, []string{s.runKey(id), s.leaseKey(id), s.heldKey()},
		fence, s.leaseMS(), id).Text()
	if err != nil {
		return fmt.Errorf("renew lease of run %s: %w", id, err)
	}
	if res == "fenced" {
		return ErrFenced
	}
	return nil
}

var releaseScript = redis.NewScript(`
-- KEYS: run hash, lease, held set; ARGV: fence, run id
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
`)

// Release gives back the run held under fence. A slice fenced out meanwhile releases
// nothing: the run is its new holder's.
func (s *Store) Release(ctx context.Context, id string, fence int64) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.runKey(id), s.leaseKey(id), s.heldKey()}, fence, id).Err(); err != nil {
		return fmt.Errorf("release run %s: %w", id, err)
	}
	return nil
}

// Held lists the runs currently held by a slice, live or dead.
func (s *Store) Held(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.heldKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list held runs: %w", err)
	}
	return ids, nil
}

var takeOverScript = redis.NewScript(`
-- KEYS: run hash, lease, held set; ARGV: run id, lease ms, now ms
if redis.call('EXISTS', KEYS[2]) == 1 then return {'held'} end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return {'free'} end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  -- Paused, parked or over (or gone): a resume enqueues the run's slice afresh.
  redis.call('SREM', KEYS[3], ARGV[1])
  return {'free'}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
-- Hold the run under the new fence until its continuation is enqueued: if this taker dies
-- first, the lease lapses again and another takes over.
redis.call('SET', KEYS[2], fence, 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
return {'ok', tostring(seq), tostring(fence), cjson.decode(redis.call('HGET', KEYS[1], 'meta'))['kind']}
`)

// Takeover is a run taken from a holder whose lease lapsed: the continuation Seq to enqueue,
// and the Fence that holds the run until it is (then Release it).
type Takeover struct {
	Seq, Fence int64
	Kind       Kind
}

// TakeOver takes run id from its holder when the holder's lease has lapsed while the run is
// still running and held: the chain moves on to a new slice and the fence moves on, so the
// old holder's late writes are refused. ok is false when the run is not up for taking
// (its lease is alive, it was released, or it is no longer running); of several callers at
// once, exactly one gets ok.
func (s *Store) TakeOver(ctx context.Context, id string) (t Takeover, ok bool, err error) {
	res, err := takeOverScript.Run(ctx, s.rdb, []string{s.runKey(id), s.leaseKey(id), s.heldKey()},
		id, s.leaseMS(), s.opts.Now().UnixMilli()).StringSlice()
	if err != nil {
		return t, false, fmt.Errorf("take over run %s: %w", id, err)
	}
	if res[0] != "ok" {
		return t, false, nil
	}
	t.Seq, _ = strconv.ParseInt(res[1], 10, 64)
	t.Fence, _ = strconv.ParseInt(res[2], 10, 64)
	t.Kind = Kind(res[3])
	return t, true, nil
}
