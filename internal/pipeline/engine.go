// Package pipeline moves a Skilljar history into Salesforce in resumable slices: it plans a
// run's streams after a preflight check, walks each stream's source pages, upserts mapped rows
// parents first, and commits a checkpoint after every batch Salesforce accepted.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/contacts"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/jobs"
)

// Sink is what the pipeline writes to and asks of Salesforce.
type Sink interface {
	Describe(ctx context.Context, sobject string) (*salesforce.SObjectDescribe, error)
	Upsert(ctx context.Context, sobject, extIDField string, recs []salesforce.Record) ([]salesforce.Result, error)
	BulkUpsert(ctx context.Context, sobject, extIDField string, recs []salesforce.Record) ([]salesforce.Result, error)
	Count(ctx context.Context, soql string) (int, error)
}

// Enqueuer puts tasks on the asynq queues.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config tunes the pipeline. Zero values take the defaults.
type Config struct {
	// SliceDuration bounds how long one slice advances its stream before it saves its
	// checkpoint and hands over to a continuation task. Defaults to 60s.
	SliceDuration time.Duration
	// ProgressConcurrency is how many learners' progress is fetched at once; the shared
	// rate limiter paces them. Defaults to 4.
	ProgressConcurrency int
	// CollectionsBatch is rows per sObject Collections call; Salesforce allows 200.
	// Defaults to 200.
	CollectionsBatch int
	// BulkBatchRows is the most rows one Bulk API job carries. Defaults to 10,000.
	BulkBatchRows int
	// BulkThreshold is the batch size from which the auto sink mode uses the Bulk API:
	// a job costs about six calls, so it pays from roughly seven collections calls' worth of
	// rows. Defaults to 1,500.
	BulkThreshold int
	// MaxPendingLearners bounds how many learners' progress may be fetched but not yet
	// handed to Salesforce, and so how many source calls a crash can cost. Defaults to 2,000,
	// which at about five rows a learner fills one Bulk API job.
	MaxPendingLearners int
	// FlushAfter bounds how long fetched progress waits for a full batch before it is
	// written anyway, so under the Skilljar rate limit a crash costs at most this much of the
	// budget. Defaults to 30s.
	FlushAfter time.Duration
	// VerifyWalks bounds how many times a verification stream re-walks a domain's learners
	// looking for members the learners stream missed; past it the run says how many are
	// still unaccounted for. Defaults to 5.
	VerifyWalks int
	// LimitBackoff is how long a run waits when Salesforce's daily API allocation (or our
	// share of it) is spent before it tries again. Defaults to 15 minutes.
	LimitBackoff time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.SliceDuration <= 0 {
		c.SliceDuration = 60 * time.Second
	}
	if c.LimitBackoff <= 0 {
		c.LimitBackoff = 15 * time.Minute
	}
	if c.FlushAfter <= 0 {
		c.FlushAfter = 30 * time.Second
	}
	def(&c.ProgressConcurrency, 4)
	def(&c.CollectionsBatch, 200)
	def(&c.BulkBatchRows, 10000)
	def(&c.BulkThreshold, 1500)
	def(&c.MaxPendingLearners, 2000)
	def(&c.VerifyWalks, 5)
	if c.CollectionsBatch > 200 {
		c.CollectionsBatch = 200
	}
	return c
}

// Deps are the parts the engine works with.
type Deps struct {
	Store    *runstore.Store
	Source   Source
	Sink     Sink
	Mapping  *mapping.Mapping
	Enqueuer Enqueuer
	// Contacts finds and creates Contacts when a run links them; *salesforce.Client is one.
	Contacts contacts.Salesforce
	// Live is the webhook queue live runs drain, and LiveBudget the share of the Skilljar
	// budget they may take (stream_live.go); a catch-up reads Live for a full detection.
	Live       LiveQueue
	LiveBudget skilljar.Limiter
	Logger     zerolog.Logger
}

// Engine starts, advances and controls runs.
type Engine struct {
	cfg Config
	Deps
}

// New returns an engine.
func New(cfg Config, d Deps) (*Engine, error) {
	switch {
	case d.Store == nil:
		return nil, errors.New("pipeline: Deps.Store is required")
	case d.Enqueuer == nil:
		return nil, errors.New("pipeline: Deps.Enqueuer is required")
	}
	if d.Mapping == nil {
		d.Mapping = mapping.Default()
	}
	return &Engine{cfg: cfg.withDefaults(), Deps: d}, nil
}

// StartRequest asks for a new run.
type StartRequest struct {
	Kind    runstore.Kind
	Scope   runstore.Scope
	Trigger string
	// IdempotencyKey makes a retried request return the run the first one created.
	IdempotencyKey string
}

// ValidationError is a request that names something that does not exist or is malformed.
// Field names the offending input; nothing was created or enqueued.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Start validates the request, stores a queued run and enqueues its first slice.
func (e *Engine) Start(ctx context.Context, req StartRequest) (run *runstore.Run, created bool, err error) {
	if req.Kind == "" {
		req.Kind = runstore.KindBackfill
	}
	sc, err := e.normalizeScope(ctx, req.Scope)
	if err != nil {
		return nil, false, err
	}
	return e.create(ctx, runstore.Meta{Kind: req.Kind, Scope: sc, Trigger: req.Trigger}, req.IdempotencyKey)
}

// create stores a queued run and enqueues its first slice; a run whose slice cannot be
// enqueued is marked failed rather than left queued with nothing to run it.
func (e *Engine) create(ctx context.Context, meta runstore.Meta, idempotencyKey string) (*runstore.Run, bool, error) {
	now := time.Now().UTC()
	meta.ID, meta.CreatedAt = runstore.NewID(now, rand.Uint32()), now
	run, created, err := e.Store.Create(ctx, meta, idempotencyKey)
	if err != nil || !created {
		return run, created, err
	}
	if err := e.enqueue(ctx, run.ID, 0, meta.Kind, 0); err != nil {
		_, _, _ = e.Store.Transition(ctx, run.ID, runstore.Transition{
			From: []runstore.State{runstore.Queued}, To: runstore.Failed,
			Error: "could not enqueue the first slice: " + err.Error(),
		})
		return nil, false, fmt.Errorf("enqueue run %s: %w", run.ID, err)
	}
	e.Logger.Info().Str("run_id", run.ID).Str("kind", string(meta.Kind)).Str("trigger", meta.Trigger).
		Strs("domains", meta.Scope.Domains).Strs("objects", meta.Scope.Objects).Bool("dry_run", meta.Scope.DryRun).Msg("run queued")
	return run, true, nil
}

// StartCatchup starts the catch-up for a cron tick over scope. A tick that finds a run of the
// same scope still active is skipped, with an event on that run saying so, and returns the
// *runstore.ConflictError.
func (e *Engine) StartCatchup(ctx context.Context, sc runstore.Scope, tick time.Time) (*runstore.Run, error) {
	run, _, err := e.Start(ctx, StartRequest{Kind: runstore.KindCatchup, Scope: sc, Trigger: "schedule",
		IdempotencyKey: "catchup:" + tick.UTC().Format(time.RFC3339)})
	var conflict *runstore.ConflictError
	if errors.As(err, &conflict) {
		msg := fmt.Sprintf("scheduled catch-up of %s skipped: this run is still active on the same scope", tick.UTC().Format(time.RFC3339))
		if aerr := e.Store.AddEvent(ctx, conflict.ActiveID, runstore.Event{Level: "info", Kind: "catchup_skipped", Message: msg}); aerr != nil {
			return nil, aerr
		}
		e.Logger.Info().Str("run_id", conflict.ActiveID).Time("tick", tick).Msg(msg)
	}
	return run, err
}

// Objects lists the object names a scope may name.
func Objects() []string { return slices.Clone(mapping.Order) }

// SinkModes lists the sink modes a scope may name.
func SinkModes() []string {
	return []string{runstore.SinkAuto, runstore.SinkCollections, runstore.SinkBulk}
}

func (e *Engine) normalizeScope(ctx context.Context, sc runstore.Scope) (runstore.Scope, error) {
	for _, o := range sc.Objects {
		if _, ok := e.Mapping.Object(o); !ok {
			return sc, &ValidationError{Field: "objects", Message: fmt.Sprintf("%q is not a mapped object; use any of %s", o, strings.Join(e.Mapping.Names(), ", "))}
		}
	}
	sc.Objects = dedupeSorted(sc.Objects)
	switch sc.SinkMode {
	case "":
		sc.SinkMode = runstore.SinkAuto
	case runstore.SinkAuto, runstore.SinkCollections, runstore.SinkBulk:
	default:
		return sc, &ValidationError{Field: "sink_mode", Message: fmt.Sprintf("%q is not a sink mode; use %s", sc.SinkMode, strings.Join(SinkModes(), ", "))}
	}
	sc.Domains = dedupeSorted(sc.Domains)
	if len(sc.Domains) > 0 && e.Source != nil {
		known, err := e.Source.Domains(ctx)
		if err != nil {
			return sc, fmt.Errorf("list Skilljar domains to check the scope: %w", err)
		}
		names := map[string]bool{}
		for _, d := range known {
			names[d.Name] = true
		}
		for _, d := range sc.Domains {
			if !names[d] {
				return sc, &ValidationError{Field: "domains", Message: fmt.Sprintf("%q is not a domain of this Skilljar organization; known: %s", d, strings.Join(slices.Sorted(maps.Keys(names)), ", "))}
			}
		}
	}
	return sc, nil
}

func dedupeSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}

func queueFor(k runstore.Kind) string {
	switch k {
	case runstore.KindCatchup:
		return jobs.QueueCatchup
	case runstore.KindLive: // short, and what makes Salesforce fresh
		return jobs.QueueCritical
	}
	return jobs.QueueBackfill
}

// enqueue puts slice seq of a run on its queue; an already enqueued slice is not an error.
func (e *Engine) enqueue(ctx context.Context, runID string, seq int64, kind runstore.Kind, delay time.Duration) error {
	task, err := jobs.NewSliceTask(jobs.SlicePayload{RunID: runID, Seq: seq}, queueFor(kind))
	if err != nil {
		return err
	}
	var opts []asynq.Option
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
	_, err = e.Enqueuer.EnqueueContext(ctx, task, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return err
}

// Get reads a run.
func (e *Engine) Get(ctx context.Context, id string) (*runstore.Run, error) {
	return e.Store.Get(ctx, id)
}

// List returns the most recent runs.
func (e *Engine) List(ctx context.Context, limit int) ([]*runstore.Run, error) {
	return e.Store.List(ctx, limit)
}

// Pause stops a run after its current batch; Resume continues it from its checkpoints.
func (e *Engine) Pause(ctx context.Context, id string) (*runstore.Run, error) {
	_, _, err := e.Store.Transition(ctx, id, runstore.Transition{
		From: []runstore.State{runstore.Queued, runstore.Running}, To: runstore.Paused,
		Event: &runstore.Event{Level: "info", Kind: "paused", Message: "paused by operator; the current batch finishes and its checkpoint is saved"},
	})
	if err != nil {
		return nil, err
	}
	return e.Store.Get(ctx, id)
}

// Resume continues a paused, failed or auth-blocked run from its checkpoints.
func (e *Engine) Resume(ctx context.Context, id string) (*runstore.Run, error) {
	return e.resume(ctx, id, []runstore.State{runstore.Paused, runstore.Failed, runstore.WaitingForAuth}, "resumed by operator")
}

// ResumeWaitingForAuth continues every run that auth loss parked; the connection calls it
// after a successful re-authentication.
func (e *Engine) ResumeWaitingForAuth(ctx context.Context) (int, error) {
	runs, err := e.Store.List(ctx, 1000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range runs {
		if r.State != runstore.WaitingForAuth {
			continue
		}
		if _, err := e.resume(ctx, r.ID, []runstore.State{runstore.WaitingForAuth}, "Salesforce re-authenticated; resuming from the checkpoint"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (e *Engine) resume(ctx context.Context, id string, from []runstore.State, why string) (*runstore.Run, error) {
	_, seq, err := e.Store.Transition(ctx, id, runstore.Transition{
		From: from, To: runstore.Running,
		Event: &runstore.Event{Level: "info", Kind: "resumed", Message: why},
	})
	if err != nil {
		return nil, err
	}
	run, err := e.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := e.enqueue(ctx, id, seq, run.Kind, 0); err != nil {
		return nil, fmt.Errorf("enqueue resumed run %s: %w", id, err)
	}
	return run, nil
}

// Cancel ends a run for good; work already accepted by Salesforce stays.
func (e *Engine) Cancel(ctx context.Context, id string) (*runstore.Run, error) {
	_, _, err := e.Store.Transition(ctx, id, runstore.Transition{
		From:  []runstore.State{runstore.Queued, runstore.Running, runstore.Paused, runstore.WaitingForAuth, runstore.Failed},
		To:    runstore.Cancelled,
		Event: &runstore.Event{Level: "info", Kind: "cancelled", Message: "cancelled by operator"},
	})
	if err != nil {
		return nil, err
	}
	return e.Store.Get(ctx, id)
}

// Watch calls fn with the run every interval until the run reaches a terminal state or ctx
// ends, and returns the last state seen.
func (e *Engine) Watch(ctx context.Context, id string, interval time.Duration, fn func(*runstore.Run)) (*runstore.Run, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		run, err := e.Store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if fn != nil {
			fn(run)
		}
		if run.State.Terminal() {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-t.C:
		}
	}
}
