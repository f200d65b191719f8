package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// LiveStarter starts live runs; *pipeline.Engine is the implementation.
type LiveStarter interface {
	StartLive(ctx context.Context, sc runstore.Scope) (*runstore.Run, error)
}

// DueChecker says whether queued learners are due, or wait for their debounce;
// *webhooks.Store is one.
type DueChecker interface {
	Due(ctx context.Context) (due, waiting bool, err error)
}

// NewWebhookDrainHandler handles the drain task: it starts a live run over the saved
// settings' domains. There is one drain task at a time (jobs.WebhookDrainTaskID), so while
// learners wait for their debounce the drain retries shortly, and a learner whose delivery
// found the task already there is not left waiting. While a run holds the scope the drain
// ends: an active live run claims what comes due, and the api schedules a drain again
// while learners wait (service.sweepWebhooks), so a long backfill of the same scope never
// exhausts the task's retries.
func NewWebhookDrainHandler(starter LiveStarter, st SettingsReader, queue DueChecker, log zerolog.Logger) asynq.Handler {
	return &drainHandler{starter: starter, settings: st, queue: queue, log: log}
}

type drainHandler struct {
	starter  LiveStarter
	settings SettingsReader
	queue    DueChecker
	log      zerolog.Logger
}

func (h *drainHandler) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	due, waiting, err := h.queue.Due(ctx)
	switch {
	case err != nil:
		return err
	case !due && waiting:
		return fmt.Errorf("%w: queued learners wait for their debounce", pipeline.ErrRetryLater)
	case !due:
		return nil
	}
	st, err := h.settings.Get(ctx)
	if err != nil {
		return err
	}
	run, err := h.starter.StartLive(ctx, st.Scope())
	var conflict *runstore.ConflictError
	switch {
	case errors.As(err, &conflict):
		h.log.Debug().Str("run_id", conflict.ActiveID).Msg("webhook drain: a run holds the scope; it or the next sweep takes the queue")
		return nil
	case err != nil:
		return err
	}
	h.log.Debug().Str("run_id", run.ID).Msg("live run started for queued webhook deliveries")
	return nil
}
