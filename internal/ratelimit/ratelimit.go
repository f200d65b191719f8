// Package ratelimit shares one API rate limit through Redis, so any number of worker
// processes together stay inside a single key's budget.
package ratelimit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit allows at most Count calls in any window of length Period.
type Limit struct {
	Count  int
	Period time.Duration
}

func (l Limit) String() string { return fmt.Sprintf("%d/%s", l.Count, l.Period) }

// ParseLimits reads a comma-separated list of limits such as "600/1m,5000/1h". Each part is
// <count>/<period>, where period is a Go duration (1s, 1m, 1h, 90s).
func ParseLimits(s string) ([]Limit, error) {
	const form = "want <count>/<period> such as 600/1m, comma-separated (600/1m,5000/1h)"
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("ratelimit: empty limit list: %s", form)
	}
	var limits []Limit
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		count, period, ok := strings.Cut(part, "/")
		if !ok {
			return nil, fmt.Errorf("ratelimit: limit %q has no '/': %s", part, form)
		}
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("ratelimit: limit %q: count %q is not a positive integer: %s", part, count, form)
		}
		d, err := time.ParseDuration(strings.TrimSpace(period))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("ratelimit: limit %q: period %q is not a positive duration: %s", part, period, form)
		}
		limits = append(limits, Limit{Count: n, Period: d})
	}
	return limits, nil
}

// Limiter hands out permission for one call at a time to every process that uses the same
// Redis key. Its state lives in Redis and is read against Redis's clock, so processes on
// machines with skewed clocks still share one budget.
//
// The server it protects is assumed to count calls in a sliding window log (as Django REST
// framework's throttle does): a call is refused when the window ending at its arrival already
// holds Count calls. Two rules keep a limiter configured at the server's exact rate free of
// 429s while spending nearly all of the budget:
//
//   - The limit with the shortest period is spread evenly: calls are scheduled
//     (Period+tolerance)/Count apart, so there are never bursts.
//   - Every longer limit keeps a log of granted calls and admits a call only while fewer
//     than Count calls fall in the last Period+tolerance. These may run at the short limit's
//     pace until their budget is spent (the "600/min burst within 5,000/hour" shape).
//
// The tolerance (see Tolerance) absorbs the difference between when the limiter grants a
// call and when the server sees it arrive.
type Limiter struct {
	rdb  redis.UniversalClient
	keys []string // the state hash (pace and pause), then one log per longer limit
	args []any    // spacing and catch-up in µs, then count and window in µs per log
}

// Tolerance is how much the limiter widens each window to absorb variation between grant
// and arrival (scheduling, connection setup, network latency jitter): 1% of the period, at
// least 20ms. At 600/1m that costs 1% of the budget; at 20/1s, 2%.
func Tolerance(period time.Duration) time.Duration {
	return max(period/100, 20*time.Millisecond)
}

// catchUp is how late a paced grant may be without delaying the ones after it. Waking a
// waiter and asking Redis take a millisecond or so; without this allowance every grant would
// push the schedule back by that much and a limiter at 20/s would lose 2-4% of its budget.
// It comes out of Tolerance: the server can see calls up to catchUp closer together.
const catchUp = 5 * time.Millisecond

// New returns a limiter that enforces every limit in limits on the budget named key. All
// processes that pass the same key and limits share one budget. New panics if limits is empty
// or holds a non-positive count or period; ParseLimits never returns such a list.
func New(rdb redis.UniversalClient, key string, limits []Limit) *Limiter {
	if len(limits) == 0 {
		panic("ratelimit: New needs at least one limit")
	}
	for _, l := range limits {
		if l.Count <= 0 || l.Period <= 0 {
			panic(fmt.Sprintf("ratelimit: invalid limit %s", l))
		}
	}
	sorted := slices.Clone(limits)
	slices.SortFunc(sorted, func(a, b Limit) int {
		// Shortest period first; on a tie the tighter limit sets the pace.
		return cmp.Or(cmp.Compare(a.Period, b.Period), cmp.Compare(a.Count, b.Count))
	})
	pace := sorted[0]
	spacing := (pace.Period + Tolerance(pace.Period)) / time.Duration(pace.Count)
	// The hash tag keeps every key of one budget in one Redis Cluster slot, as a script that
	// touches several keys requires.
	l := &Limiter{
		rdb:  rdb,
		keys: []string{"ratelimit:{" + key + "}:state"},
		args: []any{max(1, spacing.Microseconds()), min(catchUp, spacing/2).Microseconds()},
	}
	for _, lim := range sorted[1:] {
		// Named by the limit, so a changed limit starts a fresh log instead of misreading
		// an old one.
		l.keys = append(l.keys, fmt.Sprintf("ratelimit:{%s}:log:%s", key, lim))
		l.args = append(l.args, lim.Count, (lim.Period + Tolerance(lim.Period)).Microseconds())
	}
	return l
}

// acquire grants one call if every limit allows it now and returns 0, or returns how long to
// wait before asking again without granting anything. Checking all limits in one script
// means a call refused by one limit never spends another limit's budget.
var acquire = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local st = redis.call("HMGET", KEYS[1], "next", "pause")
local nxt = tonumber(st[1] or "0")
local pause = tonumber(st[2] or "0")
if pause - now > wait then wait = pause - now end
if nxt - now > wait then wait = nxt - now end
local longest = tonumber(ARGV[1])
for i = 2, #KEYS do
  local count = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  if window > longest then longest = window end
  redis.call("ZREMRANGEBYSCORE", KEYS[i], "-inf", now - window)
  local n = redis.call("ZCARD", KEYS[i])
  if n >= count then
    local oldest = redis.call("ZRANGE", KEYS[i], n - count, n - count, "WITHSCORES")
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
local member = now .. "-" .. redis.call("HINCRBY", KEYS[1], "seq", 1)
local slot = math.max(nxt, now - tonumber(ARGV[2]))
redis.call("HSET", KEYS[1], "next", slot + tonumber(ARGV[1]))
for i = 2, #KEYS do
  redis.call("ZADD", KEYS[i], now, member)
  redis.call("PEXPIRE", KEYS[i], math.ceil(tonumber(ARGV[2 * i]) / 1000))
end
redis.call("PEXPIRE", KEYS[1], math.ceil(longest / 1000))
return 0
`)

// pause moves the shared "nobody calls before" time forward, never back.
var pause = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilT = now + tonumber(ARGV[1])
local cur = tonumber(redis.call("HGET", KEYS[1], "pause") or "0")
if untilT > cur then
  redis.call("HSET", KEYS[1], "pause", untilT)
  local ttl = redis.call("PTTL", KEYS[1])
  local need = math.ceil(tonumber(ARGV[1]) / 1000) + 1000
  if ttl < need then redis.call("PEXPIRE", KEYS[1], need) end
end
return 0
`)

// Wait blocks until every limit allows one more call and records that call against the
// shared budget. It returns how long it blocked. It returns early with ctx's error when ctx
// ends, and with a wrapped Redis error when Redis cannot be reached.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	var timer *time.Timer
	for {
		us, err := acquire.Run(ctx, l.rdb, l.keys, l.args...).Int64()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return time.Since(start), ctxErr
			}
			return time.Since(start), fmt.Errorf("ratelimit: acquire: %w", err)
		}
		if us <= 0 {
			return time.Since(start), nil
		}
		d := time.Duration(us) * time.Microsecond
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-timer.C:
		}
	}
}

// PauseUntil stops every process sharing this budget from being granted a call before t,
// for example when the server answered 429 with a Retry-After. An earlier pause never
// shortens a later one. The pause is stored relative to Redis's clock, so skew between this
// machine and others does not stretch or shrink it.
func (l *Limiter) PauseUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	if err := pause.Run(ctx, l.rdb, l.keys[:1], d.Microseconds()).Err(); err != nil {
		return fmt.Errorf("ratelimit: pause: %w", err)
	}
	return nil
}
