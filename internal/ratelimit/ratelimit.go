// Package ratelimit shares one API rate limit through Redis, so any number of worker
// processes together stay inside a single key's budget.
package ratelimit

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit allows at most Count calls in a window of length Period.
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

// Window is how the protected server counts calls against a Limit.
type Window string

const (
	// Sliding windows refuse a call when the Period ending at its arrival already holds
	// Count calls, as Django REST framework's SimpleRateThrottle does with its log of request
	// times. A limiter set to Sliding is also safe against any fixed window of the same
	// Period, wherever that window starts, since a fixed window is one of the spans a sliding
	// window checks.
	Sliding Window = "sliding"
	// Fixed windows count calls in consecutive periods that start at whole multiples of
	// Period since the Unix epoch (a counter keyed by time/period), and reset at each start.
	// A limiter set to Fixed spends a fresh allowance the moment a period begins, which a
	// sliding server would refuse.
	Fixed Window = "fixed"
)

// ParseWindow reads "sliding" or "fixed".
func ParseWindow(s string) (Window, error) {
	switch w := Window(strings.ToLower(strings.TrimSpace(s))); w {
	case Sliding, Fixed:
		return w, nil
	}
	return "", fmt.Errorf("ratelimit: window %q is neither %s nor %s", s, Sliding, Fixed)
}

// DefaultMargin is the safety margin a limiter on limits uses unless told otherwise (see
// WithMargin): half a second, or 2% of the shortest period when that is less. Half a second
// covers NTP-synced clocks (skew of tens of milliseconds) and the spread of one request's
// journey from grant to the server's throttle: a pooled connection against a fresh TLS
// handshake, a GC pause, queueing at the server's load balancer. It costs 0.8% of a
// one-minute window and 0.01% of an hour. Limits of a second or so are test or compressed
// clocks, where the cap keeps 98% of each window's budget.
func DefaultMargin(limits []Limit) time.Duration {
	m := 500 * time.Millisecond
	for _, l := range limits {
		m = min(m, l.Period/50)
	}
	return m
}

// Option tunes a Limiter to what is known of the server.
type Option func(*options)

type options struct {
	window Window
	margin time.Duration
}

// WithWindow sets how the server counts calls; the default (and "") is Sliding.
func WithWindow(w Window) Option { return func(o *options) { o.window = cmp.Or(w, Sliding) } }

// WithMargin sets how far a call's arrival at the server, read on the server's clock, may
// lie from the moment Redis granted it, read on Redis's clock, in either direction: the
// clock skew between the two plus the spread of the time a request takes to reach the
// server's throttle. The default is DefaultMargin of the limits.
func WithMargin(d time.Duration) Option { return func(o *options) { o.margin = d } }

// Limiter hands out permission for one call at a time to every process that uses the same
// Redis key. Its state lives in Redis and is read against Redis's clock, so processes on
// machines with skewed clocks still share one budget.
//
// A call is granted as soon as every limit allows it: a window's whole allowance is spent
// the moment the window opens, with no pacing, so a run never leaves budget unused while
// it has work. What a limit allows depends on the server's Window kind and on the margin
// m (see WithMargin), the uncertainty about when a granted call reaches the server:
//
//   - Sliding: a call is granted while fewer than Count calls were granted in the last
//     Period+m. Two calls' arrivals can then be no closer than Period apart when their
//     grants were Period+m apart, so no span of Period at the server holds more than Count.
//     Only differences between times matter here, so clock skew cancels out and m need
//     only cover the spread of latency.
//   - Fixed: a call granted at Redis time g arrives somewhere in [g-m, g+m] on the server's
//     clock, so it is counted in every fixed window that span touches, and granted only
//     while each of them holds fewer than Count. A call granted just before a window ends
//     thus also spends the next window's allowance, in case it lands there; a window that
//     follows a full one opens m after its start.
type Limiter struct {
	rdb  redis.UniversalClient
	keys []string // the state hash (pause), then one record per limit
	args []any    // window kind and margin in µs, then count and period in µs per limit
}

// New returns a limiter that enforces every limit in limits on the budget named key. All
// processes that pass the same key, limits and options share one budget. New panics if
// limits is empty or holds a non-positive count or period, or on an unknown window or a
// negative margin; ParseLimits and ParseWindow never return such values.
func New(rdb redis.UniversalClient, key string, limits []Limit, opts ...Option) *Limiter {
	if len(limits) == 0 {
		panic("ratelimit: New needs at least one limit")
	}
	for _, l := range limits {
		if l.Count <= 0 || l.Period <= 0 {
			panic(fmt.Sprintf("ratelimit: invalid limit %s", l))
		}
	}
	o := options{window: Sliding, margin: DefaultMargin(limits)}
	for _, opt := range opts {
		opt(&o)
	}
	w, err := ParseWindow(string(o.window))
	if err != nil {
		panic(err.Error())
	}
	if o.margin < 0 {
		panic(fmt.Sprintf("ratelimit: negative margin %s", o.margin))
	}
	// The hash tag keeps every key of one budget in one Redis Cluster slot, as a script that
	// touches several keys requires.
	l := &Limiter{
		rdb:  rdb,
		keys: []string{"ratelimit:{" + key + "}:state"},
		args: []any{string(w), o.margin.Microseconds()},
	}
	for _, lim := range limits {
		// Named by the window kind and the limit, so a changed setting starts a fresh
		// record instead of misreading an old one of another shape.
		l.keys = append(l.keys, fmt.Sprintf("ratelimit:{%s}:%s:%s", key, w, lim))
		l.args = append(l.args, lim.Count, lim.Period.Microseconds())
	}
	return l
}

// acquire grants one call if every limit allows it now and returns 0, or returns how long to
// wait before asking again without granting anything. Checking all limits in one script
// means a call refused by one limit never spends another limit's budget, and no other
// process can slip a grant in between the check and the record.
//
// A sliding limit's record is a sorted set of grant times (an exact log: a counter would
// only approximate the server's log). A fixed limit's record is a hash from window number
// to grants counted in it.
var acquire = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fixed = ARGV[1] == "fixed"
local margin = tonumber(ARGV[2])
local wait = 0
local pause = tonumber(redis.call("HGET", KEYS[1], "pause") or "0")
if pause > now then wait = pause - now end
for i = 2, #KEYS do
  local count = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  if fixed then
    for w = math.floor((now - margin) / period), math.floor((now + margin) / period) do
      if tonumber(redis.call("HGET", KEYS[i], w) or "0") >= count then
        local d = (w + 1) * period + margin - now
        if d > wait then wait = d end
      end
    end
  else
    local span = period + margin
    redis.call("ZREMRANGEBYSCORE", KEYS[i], "-inf", now - span)
    local n = redis.call("ZCARD", KEYS[i])
    if n >= count then
      local oldest = redis.call("ZRANGE", KEYS[i], n - count, n - count, "WITHSCORES")
      local d = tonumber(oldest[2]) + span - now
      if d > wait then wait = d end
    end
  end
end
if wait > 0 then return math.ceil(wait) end
local member = now .. "-" .. redis.call("HINCRBY", KEYS[1], "seq", 1)
local longest = 0
for i = 2, #KEYS do
  local period = tonumber(ARGV[2 * i])
  if fixed then
    local first = math.floor((now - margin) / period)
    for w = first, math.floor((now + margin) / period) do
      redis.call("HINCRBY", KEYS[i], w, 1)
    end
    for _, w in ipairs(redis.call("HKEYS", KEYS[i])) do
      if tonumber(w) < first then redis.call("HDEL", KEYS[i], w) end
    end
  else
    redis.call("ZADD", KEYS[i], now, member)
  end
  -- A record outlives every window its newest grant can count in.
  local keep = 2 * period + 2 * margin
  if keep > longest then longest = keep end
  redis.call("PEXPIRE", KEYS[i], math.ceil(keep / 1000))
end
if redis.call("PTTL", KEYS[1]) < longest / 1000 then
  redis.call("PEXPIRE", KEYS[1], math.ceil(longest / 1000))
end
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
