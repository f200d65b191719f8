package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// errLeaseLost is the cause a slice's context ends with when its run was taken over.
var errLeaseLost = errors.New("the run's lease lapsed and another worker took it over")

// releaseTimeout bounds giving a run back after the slice's own context ended.
const releaseTimeout = 5 * time.Second

// lease keeps a claimed run held while its slice works: it renews the run's lease several
// times per lease period, and ends the slice's context when a renewal finds the run taken
// over, since that slice can no longer commit.
type lease struct {
	e     *Engine
	runID string
	fence int64
	log   zerolog.Logger
	// parent is the context the slice was given; the release outlives its cancellation.
	parent context.Context
	// ctx is the slice's context, ended with errLeaseLost when the run is taken over.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	wg     sync.WaitGroup
}

// hold starts renewing the lease Claim took; the returned context ends when the run is lost.
// The caller must release the lease when the slice returns, by any path.
func (e *Engine) hold(ctx context.Context, runID string, fence int64, log zerolog.Logger) (context.Context, *lease) {
	sctx, cancel := context.WithCancelCause(ctx)
	l := &lease{e: e, runID: runID, fence: fence, log: log, parent: ctx, ctx: sctx, cancel: cancel, done: make(chan struct{})}
	// A renewal that misses once or twice (a slow Redis) still leaves time before the lease
	// lapses.
	every := max(e.Store.LeaseTTL()/5, time.Millisecond)
	l.wg.Add(1)
	go l.renew(every)
	return sctx, l
}

func (l *lease) renew(every time.Duration) {
	ctx := l.ctx
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.e.Store.Renew(ctx, l.runID, l.fence)
		switch {
		case errors.Is(err, runstore.ErrFenced):
			l.log.Warn().Msg("lease renewal found the run taken over; the slice stops without writing")
			l.cancel(errLeaseLost)
			return
		case err != nil && ctx.Err() == nil:
			// The lease outlives a few missed renewals; a Redis down longer than that stops
			// this slice's commits too.
			l.log.Warn().Err(err).Msg("could not renew the run's lease")
		}
	}
}

// lost reports whether the run was taken over while the slice worked.
func (l *lease) lost() bool { return errors.Is(context.Cause(l.ctx), errLeaseLost) }

// release stops the renewals and gives the run back, so only a process that died leaves a
// held run without a lease.
func (l *lease) release() {
	close(l.done)
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.parent), releaseTimeout)
	defer cancel()
	if err := l.e.Store.Release(ctx, l.runID, l.fence); err != nil {
		// Left held, the run is taken over once the lease lapses: a continuation, late.
		l.log.Warn().Err(err).Msg("could not release the run's lease")
	}
	l.cancel(nil)
}

// SweepLeases takes over every run whose holder stopped renewing its lease (its process
// died) and enqueues the continuation under the new fence, so the run goes on within
// seconds of the lease lapsing rather than when asynq recovers the dead worker's task. That
// task, when it is recovered, finds its slice stale and does nothing. It returns how many
// runs it took over.
func (e *Engine) SweepLeases(ctx context.Context) (int, error) {
	ids, err := e.Store.Held(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		to, ok, err := e.Store.TakeOver(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		// Until this enqueue and release, the run is held under the new fence: a taker that
		// dies here leaves it to the next sweep once that lease lapses too.
		if err := e.enqueue(ctx, id, to.Seq, to.Kind, 0); err != nil {
			errs = append(errs, fmt.Errorf("enqueue the continuation of run %s: %w", id, err))
			continue
		}
		if err := e.Store.Release(ctx, id, to.Fence); err != nil {
			errs = append(errs, err)
		}
		n++
		msg := fmt.Sprintf("the slice holding the run stopped renewing its lease (its worker died); slice %d continues from the checkpoint", to.Seq)
		if err := e.Store.AddEvent(ctx, id, runstore.Event{Level: "warn", Kind: "taken_over", Message: msg}); err != nil {
			errs = append(errs, err)
		}
		e.Logger.Warn().Str("run_id", id).Int64("seq", to.Seq).Msg(msg)
	}
	return n, errors.Join(errs...)
}
