package runstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/rediskey"
)

// Errors the store classifies for its callers.
var (
	ErrNotFound = errors.New("run not found")
	// ErrFenced means another slice took over the run; this one must stop without writing.
	ErrFenced = errors.New("run was taken over by another slice")
	// ErrStale means the slice task is behind the run's chain (a re-delivered task).
	ErrStale = errors.New("slice is stale")
	// ErrNotYet means the previous slice has enqueued this one but not yet handed over.
	ErrNotYet = errors.New("previous slice has not handed over yet")
	// ErrBadTransition means the run is not in a state the operation applies to.
	ErrBadTransition = errors.New("run is not in a state that allows this")
)

// ConflictError says another run with the same scope is active.
type ConflictError struct{ ActiveID string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("a run with the same scope is already active: %s", e.ActiveID)
}

// ParkedError says the run is not runnable (paused, waiting for auth, terminal): the slice
// must do nothing. The chain has been parked so a resume enqueues a fresh task.
type ParkedError struct{ State State }

func (e *ParkedError) Error() string { return fmt.Sprintf("run is %s", e.State) }

// Options tune the store's caps; zero values take the defaults.
type Options struct {
	// Prefix namespaces every key. Defaults to rediskey.Prefix.
	Prefix string
	// EventCap bounds the activity log per run. Defaults to 1,000.
	EventCap int
	// RejectedCap bounds the rejected-records ledger per run; beyond it only a count is kept.
	// Defaults to 10,000.
	RejectedCap int
	// SampleCap bounds dry-run sample rows per run. Defaults to 20.
	SampleCap int
	// IdempotencyTTL is how long an Idempotency-Key maps to its run. Defaults to 24h.
	IdempotencyTTL time.Duration
	// Lease is how long a claimed run stays held without a renewal before a live worker may
	// take it over (lease.go). Defaults to 15s.
	Lease time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// Store reads and writes runs in Redis.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = rediskey.Prefix
	}
	if opts.EventCap <= 0 {
		opts.EventCap = 1000
	}
	if opts.RejectedCap <= 0 {
		opts.RejectedCap = 10000
	}
	if opts.SampleCap <= 0 {
		opts.SampleCap = 20
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.Lease <= 0 {
		opts.Lease = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, opts: opts}
}

// Redis returns the client, for components that keep their own keys next to the runs.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Key names. Every key of one run carries the run id as a hash tag so a run's keys share a
// slot and its scripts stay valid on a Redis Cluster.
func (s *Store) runKey(id string) string      { return s.opts.Prefix + "run:{" + id + "}" }
func (s *Store) eventsKey(id string) string   { return s.runKey(id) + ":events" }
func (s *Store) rejectedKey(id string) string { return s.runKey(id) + ":rejected" }
func (s *Store) learnersKey(id string) string { return s.runKey(id) + ":learners" }
func (s *Store) samplesKey(id string) string  { return s.runKey(id) + ":samples" }
func (s *Store) rateKey(id string) string     { return s.runKey(id) + ":rate" }
func (s *Store) snapshotKey(id string) string { return s.runKey(id) + ":snapshot" }
func (s *Store) membersKey(id string) string  { return s.runKey(id) + ":members" }
func (s *Store) studentsKey(id string) string { return s.runKey(id) + ":students" }
func (s *Store) rejectedKeysKey(id string) string {
	return s.runKey(id) + ":rejected_keys"
}
func (s *Store) domainKey(id, domain string) string {
	return s.runKey(id) + ":domain:" + domain
}
func (s *Store) changedKey(id string, pass int) string {
	return s.runKey(id) + ":changed:" + strconv.Itoa(pass)
}
func (s *Store) runsKey() string         { return s.opts.Prefix + "runs" }
func (s *Store) idemKey(k string) string { return s.opts.Prefix + "idem:" + k }

// ActiveKey is the key that holds the id of the active run for a scope.
func (s *Store) activeKey(sc Scope) string {
	return s.opts.Prefix + "active:" + ScopeKey(sc)
}

// ScopeKey identifies a scope regardless of list order, for "same scope is active" checks.
// Dry runs write nothing, so they never conflict with a real run of the same scope.
func ScopeKey(sc Scope) string {
	d := append([]string(nil), sc.Domains...)
	o := append([]string(nil), sc.Objects...)
	sort.Strings(d)
	sort.Strings(o)
	sum := sha256.Sum256([]byte(strings.Join(d, ",") + "|" + strings.Join(o, ",") + "|" + strconv.FormatBool(sc.DryRun)))
	return hex.EncodeToString(sum[:8])
}

var createScript = redis.NewScript(`
-- KEYS: run hash, active key, runs zset, idem key ("" when none)
-- ARGV: id, meta json, now ms, idem ttl seconds
if KEYS[4] ~= '' then
  local prior = redis.call('GET', KEYS[4])
  if prior then return {'idem', prior} end
end
local active = redis.call('GET', KEYS[2])
if active then return {'conflict', active} end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'state', 'queued', 'seq', 0, 'fence', 0,
  'current', 0, 'active_key', KEYS[2], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4]) end
return {'ok', ARGV[1]}
`)

// Create stores a new queued run. With an idempotency key already used, it returns the run
// created then and created=false. It fails with *ConflictError when a run with the same scope
// and kind is active.
func (s *Store) Create(ctx context.Context, m Meta, idempotencyKey string) (run *Run, created bool, err error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return nil, false, fmt.Errorf("encode run: %w", err)
	}
	idem := ""
	if idempotencyKey != "" {
		idem = s.idemKey(idempotencyKey)
	}
	res, err := createScript.Run(ctx, s.rdb,
		[]string{s.runKey(m.ID), s.activeKey(m.Scope), s.runsKey(), idem},
		m.ID, meta, s.opts.Now().UnixMilli(), int(s.opts.IdempotencyTTL.Seconds())).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("create run: %w", err)
	}
	switch res[0] {
	case "conflict":
		return nil, false, &ConflictError{ActiveID: res[1]}
	case "idem":
		r, err := s.Get(ctx, res[1])
		return r, false, err
	}
	r, err := s.Get(ctx, m.ID)
	return r, true, err
}

// Get reads a run.
func (s *Store) Get(ctx context.Context, id string) (*Run, error) {
	runs, err := s.read(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if runs[0] == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return runs[0], nil
}

// read reads runs in one round trip; a run that does not exist comes back nil.
func (s *Store) read(ctx context.Context, ids []string) ([]*Run, error) {
	pipe := s.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(ids))
	rates := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		hashes[i] = pipe.HGetAll(ctx, s.runKey(id))
		rates[i] = pipe.LRange(ctx, s.rateKey(id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	runs := make([]*Run, len(ids))
	for i, id := range ids {
		h := hashes[i].Val()
		if len(h) == 0 {
			continue
		}
		r, err := decodeRun(h)
		if err != nil {
			return nil, fmt.Errorf("decode run %s: %w", id, err)
		}
		r.Progress = progressFrom(r.Progress, rates[i].Val(), r.State, s.opts.Now())
		runs[i] = r
	}
	return runs, nil
}

func decodeRun(h map[string]string) (*Run, error) {
	r := &Run{Counters: map[string]Counters{}}
	if err := json.Unmarshal([]byte(h["meta"]), &r.Meta); err != nil {
		return nil, err
	}
	r.State = State(h["state"])
	r.Error = h["error"]
	r.Seq, _ = strconv.ParseInt(h["seq"], 10, 64)
	cur, _ := strconv.Atoi(h["current"])
	r.Current = cur
	r.RejectedDropped, _ = strconv.ParseInt(h["rejected_dropped"], 10, 64)
	r.Progress.Done, _ = strconv.ParseInt(h["progress_done"], 10, 64)
	r.Progress.Total, _ = strconv.ParseInt(h["progress_total"], 10, 64)
	r.StartedAt = msTime(h["started_at"])
	r.FinishedAt = msTime(h["finished_at"])
	r.UpdatedAt = msTime(h["updated_at"])
	r.CheckpointAt = msTime(h["checkpoint_at"])
	if p := h["plan"]; p != "" {
		r.Plan = &Plan{}
		if err := json.Unmarshal([]byte(p), r.Plan); err != nil {
			return nil, err
		}
		for i, def := range r.Plan.Streams {
			st := StreamStatus{StreamDef: def, Done: h["done:"+strconv.Itoa(i)] == "1"}
			if cp := h["cp:"+strconv.Itoa(i)]; cp != "" {
				st.Checkpoint = json.RawMessage(cp)
			}
			r.Streams = append(r.Streams, st)
		}
	}
	if sm := h["summary"]; sm != "" {
		r.Summary = &Summary{}
		if err := json.Unmarshal([]byte(sm), r.Summary); err != nil {
			return nil, err
		}
	}
	for k, v := range h {
		obj, outcome, ok := strings.Cut(strings.TrimPrefix(k, "n:"), ":")
		if !ok || !strings.HasPrefix(k, "n:") {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		c := r.Counters[obj]
		c.set(outcome, n)
		r.Counters[obj] = c
	}
	return r, nil
}

func msTime(s string) *time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// rateWindow is how far back the measured rate looks: long enough to smooth page loads,
// short enough to follow a change of pace.
const rateWindow = 5 * time.Minute

// progressFrom derives percent, rate and ETA from the recent (time, done) samples.
func progressFrom(p Progress, samples []string, st State, now time.Time) Progress {
	p.ETASeconds = -1
	if p.Total > 0 {
		p.Percent = 100 * float64(p.Done) / float64(p.Total)
		if p.Percent > 100 {
			p.Percent = 100
		}
	}
	if st.Terminal() {
		if st == Succeeded {
			p.Percent, p.ETASeconds = 100, 0
		}
		return p
	}
	type sample struct {
		at   time.Time
		done int64
	}
	var pts []sample
	for _, s := range samples {
		a, b, ok := strings.Cut(s, ":")
		if !ok {
			continue
		}
		ms, err1 := strconv.ParseInt(a, 10, 64)
		d, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		at := time.UnixMilli(ms)
		if now.Sub(at) <= rateWindow {
			pts = append(pts, sample{at, d})
		}
	}
	if len(pts) < 2 {
		return p
	}
	first, last := pts[0], pts[len(pts)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 || last.done <= first.done {
		return p
	}
	p.Rate = float64(last.done-first.done) / secs
	if st == Running || st == Queued {
		remaining := p.Total - p.Done
		if remaining < 0 {
			remaining = 0
		}
		p.ETASeconds = float64(remaining) / p.Rate
	}
	return p
}

// List returns the most recent runs, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]*Run, error) {
	if limit <= 0 {
		limit = 50
	}
	ids, err := s.rdb.ZRevRange(ctx, s.runsKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := s.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := runs[:0]
	for _, r := range runs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

var claimScript = redis.NewScript(`
-- KEYS: run hash, lease, held set; ARGV: seq, now ms, run id, lease ms
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local want = tonumber(ARGV[1])
if want < seq then return {'stale', st} end
if want > seq then return {'notyet', st} end
if st == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'updated_at', ARGV[2])
elseif st ~= 'running' then
  -- Park the chain: the next resume enqueues a task with a fresh id.
  redis.call('HSET', KEYS[1], 'seq', seq + 1)
  return {'parked', st}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('SET', KEYS[2], fence, 'PX', ARGV[4])
redis.call('SADD', KEYS[3], ARGV[3])
return {'ok', tostring(fence)}
`)

// Claim makes the calling slice the run's only writer. It returns the fence token every
// later write must present. The run is then held under a lease the slice renews (Renew) and
// gives back when it returns (Release). A slice behind the chain gets ErrStale, one ahead of
// it ErrNotYet, and a run that is not runnable a *ParkedError.
func (s *Store) Claim(ctx context.Context, id string, seq int64) (fence int64, err error) {
	res, err := claimScript.Run(ctx, s.rdb, []string{s.runKey(id), s.leaseKey(id), s.heldKey()},
		seq, s.opts.Now().UnixMilli(), id, s.leaseMS()).StringSlice()
	if err != nil {
		return 0, fmt.Errorf("claim run %s: %w", id, err)
	}
	switch res[0] {
	case "missing":
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	case "stale":
		return 0, ErrStale
	case "notyet":
		return 0, ErrNotYet
	case "parked":
		return 0, &ParkedError{State: State(res[1])}
	}
	return strconv.ParseInt(res[1], 10, 64)
}

var setPlanScript = redis.NewScript(`
-- KEYS: run hash; ARGV: fence, plan json, progress total, now
if ARGV[1] == '0' or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 'fenced' end
redis.call('HSET', KEYS[1], 'plan', ARGV[2], 'progress_total', ARGV[3], 'updated_at', ARGV[4])
return 'ok'
`)

// SetPlan records the streams the run will walk and the size of its long pole.
func (s *Store) SetPlan(ctx context.Context, id string, fence int64, p Plan, progressTotal int64) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	res, err := setPlanScript.Run(ctx, s.rdb, []string{s.runKey(id)}, fence, b, progressTotal, s.opts.Now().UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("save plan of run %s: %w", id, err)
	}
	if res == "fenced" {
		return ErrFenced
	}
	return nil
}

var commitScript = redis.NewScript(`
-- KEYS: run hash, events, rejected, learners, samples, rate, snapshot, changed list, members,
--       students, domain, rejected keys
-- ARGV: 1 fence, 2 now ms, 3 stream (-1 none), 4 checkpoint json, 5 stream done (0/1),
--       6 progress done delta, 7 event cap, 8 rejected cap, 9 sample cap, 10 progress total delta,
--       11 learners also go to the domain set (0/1),
--       then groups, each a count followed by its items: counters (field, delta pairs),
--       learners, events, rejected rows, samples, snapshot (learner, fingerprint pairs),
--       changed learners, members, students, rejected records (object/external id).
local h = KEYS[1]
if ARGV[1] == '0' or redis.call('HGET', h, 'fence') ~= ARGV[1] then return {'fenced', ''} end
local i = 12
-- each reads one group and hands its items to fn in chunks small enough for unpack.
local function each(width, fn)
  local n = tonumber(ARGV[i]); i = i + 1
  local chunk = {}
  for k = 1, n * width do
    chunk[#chunk + 1] = ARGV[i]; i = i + 1
    if #chunk >= 500 * width then fn(chunk); chunk = {} end
  end
  if #chunk > 0 then fn(chunk) end
end
each(2, function(c) for k = 1, #c, 2 do redis.call('HINCRBY', h, c[k], c[k + 1]) end end)
each(1, function(c)
  redis.call('SADD', KEYS[4], unpack(c))
  if ARGV[11] == '1' then redis.call('SADD', KEYS[11], unpack(c)) end
end)
local events = false
each(1, function(c) redis.call('RPUSH', KEYS[2], unpack(c)); events = true end)
if events then redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1) end
local len = redis.call('LLEN', KEYS[3])
each(1, function(c)
  for k = 1, #c do
    if len < tonumber(ARGV[8]) then
      redis.call('RPUSH', KEYS[3], c[k]); len = len + 1
    else
      redis.call('HINCRBY', h, 'rejected_dropped', 1)
    end
  end
end)
local slen = redis.call('LLEN', KEYS[5])
each(1, function(c)
  for k = 1, #c do
    if slen < tonumber(ARGV[9]) then redis.call('RPUSH', KEYS[5], c[k]); slen = slen + 1 end
  end
end)
each(2, function(c) redis.call('HSET', KEYS[7], unpack(c)) end)
each(1, function(c) redis.call('RPUSH', KEYS[8], unpack(c)) end)
each(1, function(c) redis.call('SADD', KEYS[9], unpack(c)) end)
each(1, function(c) redis.call('SADD', KEYS[10], unpack(c)) end)
each(1, function(c) redis.call('SADD', KEYS[12], unpack(c)) end)
local stream = tonumber(ARGV[3])
if stream >= 0 then
  redis.call('HSET', h, 'cp:' .. stream, ARGV[4], 'checkpoint_at', ARGV[2])
  if ARGV[5] == '1' then
    redis.call('HSET', h, 'done:' .. stream, '1', 'current', stream + 1)
  end
end
if tonumber(ARGV[10]) ~= 0 then redis.call('HINCRBY', h, 'progress_total', ARGV[10]) end
local delta = tonumber(ARGV[6])
if delta > 0 then
  local done = redis.call('HINCRBY', h, 'progress_done', delta)
  redis.call('RPUSH', KEYS[6], ARGV[2] .. ':' .. done)
  redis.call('LTRIM', KEYS[6], -120, -1)
end
redis.call('HSET', h, 'updated_at', ARGV[2])
return {'ok', redis.call('HGET', h, 'state')}
`)

// Commit applies one accepted batch atomically: checkpoint, counters, learners done, events,
// rejected rows, samples and change-detection state. It returns the run's state so the
// caller can stop when the run was paused or cancelled meanwhile, and ErrFenced when another
// slice took over.
func (s *Store) Commit(ctx context.Context, id string, fence int64, c Commit) (State, error) {
	cp := []byte("null")
	if c.Stream >= 0 {
		var err error
		if cp, err = json.Marshal(c.Checkpoint); err != nil {
			return "", fmt.Errorf("encode checkpoint: %w", err)
		}
	}
	now := s.opts.Now()
	args := []any{fence, now.UnixMilli(), c.Stream, cp, boolArg(c.StreamDone), c.ProgressDone,
		s.opts.EventCap, s.opts.RejectedCap, s.opts.SampleCap, c.ProgressTotal, boolArg(c.Domain != "")}
	group := func(width int, items []any) {
		args = append(args, len(items)/width)
		args = append(args, items...)
	}
	var counters []any
	for obj, cnt := range c.Counters {
		for outcome, v := range cnt.fields() {
			if v != 0 {
				counters = append(counters, "n:"+obj+":"+outcome, v)
			}
		}
	}
	group(2, counters)
	group(1, strs(c.Learners))
	var events, rejected, samples []any
	for _, e := range c.Events {
		if e.At.IsZero() {
			e.At = now
		}
		events = append(events, mustJSON(e))
	}
	for _, r := range c.Rejected {
		if r.At.IsZero() {
			r.At = now
		}
		rejected = append(rejected, mustJSON(r))
	}
	for _, sm := range c.Samples {
		samples = append(samples, mustJSON(sm))
	}
	group(1, events)
	group(1, rejected)
	group(1, samples)
	var snapshot []any
	for learner, fp := range c.Snapshot {
		snapshot = append(snapshot, learner, fp)
	}
	group(2, snapshot)
	group(1, strs(c.Changed))
	group(1, strs(c.Members))
	group(1, strs(c.Students))
	var rejectedKeys []any
	for _, r := range c.Rejected {
		rejectedKeys = append(rejectedKeys, r.Object+"/"+r.ExternalID)
	}
	group(1, rejectedKeys)
	keys := []string{s.runKey(id), s.eventsKey(id), s.rejectedKey(id), s.learnersKey(id), s.samplesKey(id),
		s.rateKey(id), s.snapshotKey(id), s.changedKey(id, c.Pass), s.membersKey(id),
		s.studentsKey(id), s.domainKey(id, c.Domain), s.rejectedKeysKey(id)}
	res, err := commitScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return "", fmt.Errorf("commit run %s: %w", id, err)
	}
	if res[0] == "fenced" {
		return "", ErrFenced
	}
	return State(res[1]), nil
}

func strs(in []string) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain data structs reach here; failing to encode them is a programming error.
		panic(fmt.Sprintf("runstore: encode %T: %v", v, err))
	}
	return string(b)
}

var handOverScript = redis.NewScript(`
-- KEYS: run hash; ARGV: fence, seq, now
if ARGV[1] == '0' or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 'fenced' end
if tonumber(redis.call('HGET', KEYS[1], 'seq')) == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'seq', tonumber(ARGV[2]) + 1, 'updated_at', ARGV[3])
end
return 'ok'
`)

// HandOver moves the run's chain from slice seq to seq+1, after the continuation task is
// enqueued: a crash between the two re-runs slice seq, which then finds its continuation
// already enqueued.
func (s *Store) HandOver(ctx context.Context, id string, fence, seq int64) error {
	res, err := handOverScript.Run(ctx, s.rdb, []string{s.runKey(id)}, fence, seq, s.opts.Now().UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("hand over run %s: %w", id, err)
	}
	if res == "fenced" {
		return ErrFenced
	}
	return nil
}

var transitionScript = redis.NewScript(`
-- KEYS: run hash, events; ARGV: to, now, error text, event json, event cap, fence ("" = any), from states...
local h = KEYS[1]
local st = redis.call('HGET', h, 'state')
if not st then return {'missing', '', ''} end
if ARGV[6] ~= '' and redis.call('HGET', h, 'fence') ~= ARGV[6] then return {'fenced', st, ''} end
local allowed = false
for i = 7, #ARGV do if ARGV[i] == st then allowed = true end end
if not allowed then return {'bad', st, ''} end
local to = ARGV[1]
local active = redis.call('HGET', h, 'active_key')
local id = cjson.decode(redis.call('HGET', h, 'meta'))['id']
if to == 'running' and active then
  local holder = redis.call('GET', active)
  if holder and holder ~= id then return {'conflict', st, holder} end
  redis.call('SET', active, id)
end
redis.call('HSET', h, 'state', to, 'updated_at', ARGV[2])
-- A resume starts a new holder: fence off the slice that parked the run, which may still be
-- handing over and would otherwise move seq past the task the resume enqueues.
if to == 'running' and st ~= 'running' then redis.call('HINCRBY', h, 'fence', 1) end
if to == 'running' or to == 'queued' then redis.call('HDEL', h, 'error', 'finished_at') end
if ARGV[3] ~= '' then redis.call('HSET', h, 'error', ARGV[3]) end
if to == 'succeeded' or to == 'failed' or to == 'cancelled' then
  redis.call('HSET', h, 'finished_at', ARGV[2])
  if active and redis.call('GET', active) == id then redis.call('DEL', active) end
end
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
end
return {'ok', st, redis.call('HGET', h, 'seq')}
`)

// Transition is a state change requested by an operator or the engine.
type Transition struct {
	From  []State
	To    State
	Error string
	Event *Event
	// Fence, when non-zero, makes the change conditional on the caller still owning the run.
	Fence int64
}

// Transition moves the run from one of t.From to t.To. It returns the previous state and the
// run's current slice seq (the one a resume must enqueue).
func (s *Store) Transition(ctx context.Context, id string, t Transition) (prev State, seq int64, err error) {
	ev := ""
	if t.Event != nil {
		if t.Event.At.IsZero() {
			t.Event.At = s.opts.Now()
		}
		ev = mustJSON(t.Event)
	}
	fence := ""
	if t.Fence != 0 {
		fence = strconv.FormatInt(t.Fence, 10)
	}
	args := []any{string(t.To), s.opts.Now().UnixMilli(), t.Error, ev, s.opts.EventCap, fence}
	for _, f := range t.From {
		args = append(args, string(f))
	}
	res, err := transitionScript.Run(ctx, s.rdb, []string{s.runKey(id), s.eventsKey(id)}, args...).StringSlice()
	if err != nil {
		return "", 0, fmt.Errorf("change state of run %s: %w", id, err)
	}
	prev = State(res[1])
	switch res[0] {
	case "missing":
		return "", 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	case "fenced":
		return prev, 0, ErrFenced
	case "bad":
		return prev, 0, fmt.Errorf("%w: run %s is %s", ErrBadTransition, id, prev)
	case "conflict":
		return prev, 0, &ConflictError{ActiveID: res[2]}
	}
	seq, _ = strconv.ParseInt(res[2], 10, 64)
	return prev, seq, nil
}

// SetSummary stores the end-of-run reconcile.
func (s *Store) SetSummary(ctx context.Context, id string, sm Summary) error {
	if err := s.rdb.HSet(ctx, s.runKey(id), "summary", mustJSON(sm)).Err(); err != nil {
		return fmt.Errorf("save summary of run %s: %w", id, err)
	}
	return nil
}

// AddEvent appends to the run's activity log outside a batch commit.
func (s *Store) AddEvent(ctx context.Context, id string, e Event) error {
	if e.At.IsZero() {
		e.At = s.opts.Now()
	}
	pipe := s.rdb.TxPipeline()
	pipe.RPush(ctx, s.eventsKey(id), mustJSON(e))
	pipe.LTrim(ctx, s.eventsKey(id), int64(-s.opts.EventCap), -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("log event of run %s: %w", id, err)
	}
	return nil
}

// Events returns the most recent activity, oldest first.
func (s *Store) Events(ctx context.Context, id string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = s.opts.EventCap
	}
	raw, err := s.rdb.LRange(ctx, s.eventsKey(id), int64(-limit), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read events of run %s: %w", id, err)
	}
	return decodeAll[Event](raw)
}

// RejectedPage returns rejected records in ledger order and the ledger's length.
func (s *Store) RejectedPage(ctx context.Context, id string, offset, limit int) ([]Rejected, int64, error) {
	if limit <= 0 {
		limit = 100
	}
	total, err := s.rdb.LLen(ctx, s.rejectedKey(id)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read rejected of run %s: %w", id, err)
	}
	raw, err := s.rdb.LRange(ctx, s.rejectedKey(id), int64(offset), int64(offset+limit-1)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read rejected of run %s: %w", id, err)
	}
	rows, err := decodeAll[Rejected](raw)
	return rows, total, err
}

// Samples returns the dry-run sample rows.
func (s *Store) Samples(ctx context.Context, id string) ([]Sample, error) {
	raw, err := s.rdb.LRange(ctx, s.samplesKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read samples of run %s: %w", id, err)
	}
	return decodeAll[Sample](raw)
}

// LearnerState is what a run has done with each learner of a list so far.
type LearnerState struct {
	// Done: fully processed in this run. Student: the student row is accepted.
	// Accounted: processed (or found done) as a member of the domain asked about.
	Done, Student, Accounted []bool
}

// Learners reports, for each id, whether this run processed that learner fully, wrote its
// student row, and accounted for it in domain ("" asks about no domain).
func (s *Store) Learners(ctx context.Context, id, domain string, learnerIDs []string) (LearnerState, error) {
	var st LearnerState
	if len(learnerIDs) == 0 {
		return st, nil
	}
	members := strs(learnerIDs)
	pipe := s.rdb.Pipeline()
	done := pipe.SMIsMember(ctx, s.learnersKey(id), members...)
	students := pipe.SMIsMember(ctx, s.studentsKey(id), members...)
	var accounted *redis.BoolSliceCmd
	if domain != "" {
		accounted = pipe.SMIsMember(ctx, s.domainKey(id, domain), members...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return st, fmt.Errorf("read learners done in run %s: %w", id, err)
	}
	st.Done, st.Student = done.Val(), students.Val()
	if accounted != nil {
		st.Accounted = accounted.Val()
	} else {
		st.Accounted = make([]bool, len(learnerIDs))
	}
	return st, nil
}

// RejectedIn reports, for each record named by object and external id, whether this run
// rejected it (its ledger may have dropped the row past its cap; this still knows).
func (s *Store) RejectedIn(ctx context.Context, id string, objects, externalIDs []string) ([]bool, error) {
	if len(objects) == 0 {
		return nil, nil
	}
	keys := make([]any, len(objects))
	for i := range objects {
		keys[i] = objects[i] + "/" + externalIDs[i]
	}
	out, err := s.rdb.SMIsMember(ctx, s.rejectedKeysKey(id), keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read rejected records of run %s: %w", id, err)
	}
	return out, nil
}

// AccountedCount is how many distinct learners the run accounted for in domain.
func (s *Store) AccountedCount(ctx context.Context, id, domain string) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.domainKey(id, domain)).Result()
	if err != nil {
		return 0, fmt.Errorf("count learners of %s in run %s: %w", domain, id, err)
	}
	return n, nil
}

func decodeAll[T any](raw []string) ([]T, error) {
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := json.Unmarshal([]byte(r), &v); err != nil {
			return nil, fmt.Errorf("decode %T: %w", v, err)
		}
		out = append(out, v)
	}
	return out, nil
}
