package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/jobs"
)

// ErrRetryLater is returned for conditions that clear by themselves (a hand-over in flight,
// rate limits): the worker retries the task without counting it as a failure.
var ErrRetryLater = errors.New("retry later")

// notYetWait is how long a slice waits for the previous slice to hand over before it gives
// the task back to the queue.
const notYetWait = 5 * time.Second

// slice is the state of one slice task while it runs.
type slice struct {
	e      *Engine
	run    *runstore.Run
	fence  int64
	seq    int64
	taskID string
	// log carries the run, slice and task ids, and the stream and page being worked on.
	log zerolog.Logger
	// streamLog is log for the current stream, before the page field.
	streamLog zerolog.Logger
	logMu     sync.Mutex
	// stop is closed when the worker is shutting down: finish the batch in hand, commit, stop.
	stop     <-chan struct{}
	deadline time.Time
}

// logger is the slice's logger; the writer goroutine moves its page field.
func (s *slice) logger() *zerolog.Logger {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l := s.log
	return &l
}

// setStream points the logger at a stream, on the page its checkpoint is at.
func (s *slice) setStream(l zerolog.Logger, checkpoint []byte) {
	s.logMu.Lock()
	s.streamLog = l
	s.logMu.Unlock()
	s.setPage(checkpoint)
}

// setPage puts the page a checkpoint is at (every cursor counts its pages) on the logger.
func (s *slice) setPage(checkpoint []byte) {
	var cp struct {
		Pages int `json:"pages"`
	}
	_ = json.Unmarshal(checkpoint, &cp)
	s.logMu.Lock()
	s.log = s.streamLog.With().Int("page", cp.Pages+1).Logger()
	s.logMu.Unlock()
}

// timeUp reports whether the slice should stop after the batch in hand.
func (s *slice) timeUp() bool {
	select {
	case <-s.stop:
		return true
	default:
	}
	return time.Now().After(s.deadline)
}

// RunSlice advances one run for up to SliceDuration, then enqueues its continuation. stop is
// closed on graceful shutdown: the slice then commits the batch in hand and hands over to a
// continuation, so the next worker starts from the saved checkpoint.
func (e *Engine) RunSlice(ctx context.Context, p jobs.SlicePayload, taskID string, stop <-chan struct{}) error {
	log := e.Logger.With().Str("run_id", p.RunID).Int64("seq", p.Seq).Str("task_id", taskID).Logger()
	fence, err := e.claim(ctx, p)
	var parked *runstore.ParkedError
	switch {
	case errors.Is(err, runstore.ErrStale):
		log.Debug().Msg("stale slice ignored: the run has moved on")
		return nil
	case errors.As(err, &parked):
		log.Info().Str("state", string(parked.State)).Msg("run is not runnable; slice parked")
		return nil
	case errors.Is(err, runstore.ErrNotFound):
		log.Warn().Msg("slice for an unknown run dropped")
		return nil
	case err != nil:
		return err
	}
	ctx, l := e.hold(ctx, p.RunID, fence, log)
	defer l.release()
	run, err := e.Store.Get(ctx, p.RunID)
	if err == nil {
		s := &slice{e: e, run: run, fence: fence, seq: p.Seq, taskID: taskID, log: log, streamLog: log, stop: stop,
			deadline: time.Now().Add(e.cfg.SliceDuration)}
		err = s.execute(ctx)
	}
	if l.lost() {
		// Whatever failed after the take-over failed for it; the run's new holder goes on.
		log.Warn().AnErr("slice_error", err).Msg("run taken over by another worker; this slice ends without writing")
		return nil
	}
	return err
}

// claim takes the run, waiting briefly when the previous slice has enqueued this one but has
// not recorded the hand-over yet.
func (e *Engine) claim(ctx context.Context, p jobs.SlicePayload) (int64, error) {
	deadline := time.Now().Add(notYetWait)
	for {
		fence, err := e.Store.Claim(ctx, p.RunID, p.Seq)
		if !errors.Is(err, runstore.ErrNotYet) {
			return fence, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: slice %d of run %s waits for the previous slice", ErrRetryLater, p.Seq, p.RunID)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *slice) execute(ctx context.Context) error {
	if s.run.Plan == nil {
		if err := s.plan(ctx); err != nil {
			return s.handle(ctx, err)
		}
	}
	base := s.log
	for s.run.Current < len(s.run.Streams) {
		st := s.run.Streams[s.run.Current]
		s.setStream(base.With().Str("stream", st.Name).Logger(), st.Checkpoint)
		state, err := s.walk(ctx, s.run.Current)
		if err != nil {
			return s.handle(ctx, err)
		}
		if state != runstore.Running {
			// Paused or cancelled while the batch was in flight: park the chain.
			s.logger().Info().Str("state", string(state)).Msg("run stopped by operator after the batch in hand")
			return ignoreFenced(s.e.Store.HandOver(ctx, s.run.ID, s.fence, s.seq))
		}
		if !s.run.Streams[s.run.Current].Done {
			return s.handOver(ctx, 0)
		}
		s.run.Current++
		if s.run.Current < len(s.run.Streams) && s.timeUp() {
			return s.handOver(ctx, 0)
		}
	}
	return s.handle(ctx, s.finish(ctx))
}

func ignoreFenced(err error) error {
	if errors.Is(err, runstore.ErrFenced) {
		return nil
	}
	return err
}

// handOver enqueues the continuation, then moves the run's chain to it.
func (s *slice) handOver(ctx context.Context, delay time.Duration) error {
	if err := s.e.enqueue(ctx, s.run.ID, s.seq+1, s.run.Kind, delay); err != nil {
		return fmt.Errorf("enqueue continuation of run %s: %w", s.run.ID, err)
	}
	s.logger().Debug().Dur("delay", delay).Msg("handed over to the next slice")
	return ignoreFenced(s.e.Store.HandOver(ctx, s.run.ID, s.fence, s.seq))
}

// handle classifies an error once: conditions an operator must fix fail the run with a
// message that says what to do; auth loss parks it until re-authentication; spent API
// budgets delay it; anything else goes back to asynq for a retry from the checkpoint.
func (s *slice) handle(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var malformed *skilljar.MalformedPageError
	var preflight *PreflightError
	var rateLimited *skilljar.RateLimitedError
	switch {
	case errors.Is(err, runstore.ErrFenced):
		s.logger().Warn().Msg("another slice took over the run; this one stops without writing")
		return nil
	case errors.Is(err, salesforce.ErrAuth):
		return s.park(ctx, runstore.WaitingForAuth, "auth_lost",
			"Salesforce refused the connection's credentials; the run waits for re-authentication and resumes from its checkpoint", err)
	case errors.Is(err, salesforce.ErrLimitExceeded), errors.Is(err, salesforce.ErrBudgetExhausted):
		s.event(ctx, "warn", "api_budget", fmt.Sprintf("%v; trying again in %s", err, s.e.cfg.LimitBackoff))
		return s.handOver(ctx, s.e.cfg.LimitBackoff)
	case errors.As(err, &malformed):
		return s.fail(ctx, fmt.Sprintf("Skilljar page %s is malformed after every retry (%v); the checkpoint is kept: resume the run once the page reads cleanly", malformed.URL, malformed.Err), err)
	case errors.As(err, &preflight):
		return s.fail(ctx, preflight.Error(), err)
	case errors.Is(err, skilljar.ErrUnauthorized):
		return s.fail(ctx, err.Error()+"; fix the key and resume the run", err)
	case errors.As(err, &rateLimited):
		return fmt.Errorf("%w: %w", ErrRetryLater, err)
	}
	s.logger().Warn().Err(err).Msg("slice failed; asynq retries it from the checkpoint")
	return err
}

func (s *slice) park(ctx context.Context, to runstore.State, kind, msg string, cause error) error {
	_, _, err := s.e.Store.Transition(ctx, s.run.ID, runstore.Transition{
		From: []runstore.State{runstore.Running}, To: to, Fence: s.fence,
		Event: &runstore.Event{Level: "warn", Kind: kind, Message: msg + ": " + cause.Error()},
	})
	if err != nil && !errors.Is(err, runstore.ErrBadTransition) {
		return ignoreFenced(err)
	}
	s.logger().Warn().Err(cause).Str("state", string(to)).Msg(msg)
	return ignoreFenced(s.e.Store.HandOver(ctx, s.run.ID, s.fence, s.seq))
}

func (s *slice) fail(ctx context.Context, msg string, cause error) error {
	_, _, err := s.e.Store.Transition(ctx, s.run.ID, runstore.Transition{
		From: []runstore.State{runstore.Running}, To: runstore.Failed, Fence: s.fence, Error: msg,
		Event: &runstore.Event{Level: "error", Kind: "failed", Message: msg},
	})
	if err != nil && !errors.Is(err, runstore.ErrBadTransition) {
		return ignoreFenced(err)
	}
	s.logger().Error().Err(cause).Msg("run failed")
	return ignoreFenced(s.e.Store.HandOver(ctx, s.run.ID, s.fence, s.seq))
}

func (s *slice) event(ctx context.Context, level, kind, msg string) {
	ev := runstore.Event{Level: level, Kind: kind, Message: msg}
	if s.run.Current < len(s.run.Streams) {
		ev.Stream = s.run.Streams[s.run.Current].Name
	}
	if err := s.e.Store.AddEvent(ctx, s.run.ID, ev); err != nil {
		s.logger().Warn().Err(err).Msg("could not log event")
	}
}

// plan runs the preflight and decides the run's streams, before any write: each stream kind
// plans its own, in the order of streamKinds.
func (s *slice) plan(ctx context.Context) error {
	if s.run.Kind == runstore.KindRedrive {
		p, total, err := s.planRedrive(ctx)
		if err != nil {
			return err
		}
		return s.savePlan(ctx, p, total)
	}
	if s.run.Kind == runstore.KindLive {
		return s.planLive(ctx)
	}
	sc := s.run.Scope
	objects, added := s.e.Mapping.WithParents(sc.Objects)
	var notes []string
	if len(added) > 0 {
		notes = append(notes, fmt.Sprintf("added %s: the requested objects refer to them and parents are written first", strings.Join(added, ", ")))
	}
	domains, err := s.scopeDomains(ctx, sc.Domains)
	if err != nil {
		return err
	}
	if sc.LinkContacts && s.e.Contacts == nil {
		return &PreflightError{Problems: []string{"Link Contacts is on but this engine has no Salesforce client for Contacts; turn Link Contacts off or configure the Salesforce connection"}}
	}
	adaptations, err := Preflight(ctx, s.e.Sink, s.e.Mapping, objects, sc)
	if err != nil {
		return err
	}
	p := &planning{e: s.e, run: s.run, objects: objects, domains: domains}
	var streams []runstore.StreamDef
	for _, k := range streamKinds {
		if k.plan == nil {
			continue
		}
		defs, err := k.plan(ctx, p)
		if err != nil {
			return err
		}
		streams = append(streams, defs...)
	}
	sink := sc.SinkMode
	if sc.DryRun {
		sink = "none (dry run)"
	}
	return s.savePlan(ctx, runstore.Plan{Streams: streams, Domains: domains, Objects: objects, Sink: sink, Notes: notes, Adaptations: adaptations}, p.total)
}

// savePlan records the plan, says so in the activity log and reloads the run.
func (s *slice) savePlan(ctx context.Context, p runstore.Plan, total int64) error {
	if err := s.e.Store.SetPlan(ctx, s.run.ID, s.fence, p, total); err != nil {
		return err
	}
	msg := fmt.Sprintf("preflight passed; %d streams, objects %s", len(p.Streams), strings.Join(p.Objects, ", "))
	if len(p.Domains) > 0 {
		msg += fmt.Sprintf(", %d domains (%s), %d learners", len(p.Domains), strings.Join(p.Domains, ", "), total)
	}
	msg += ", sink " + p.Sink
	if len(p.Notes) > 0 {
		msg += "; " + strings.Join(p.Notes, "; ")
	}
	s.event(ctx, "info", "planned", msg)
	s.reportAdaptations(ctx, p.Adaptations)
	s.logger().Info().Int("streams", len(p.Streams)).Int64("total", total).Msg(msg)
	run, err := s.e.Store.Get(ctx, s.run.ID)
	if err != nil {
		return err
	}
	s.run = run
	return nil
}

// scopeDomains is the domains a run's scope names, or every domain of the Skilljar
// organization when it names none.
func (s *slice) scopeDomains(ctx context.Context, named []string) ([]string, error) {
	if len(named) > 0 {
		return named, nil
	}
	all, err := s.e.Source.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Skilljar domains: %w", err)
	}
	domains := make([]string, 0, len(all))
	for _, d := range all {
		domains = append(domains, d.Name)
	}
	return dedupeSorted(domains), nil
}
