package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/jobs"
)

// CatchupStarter starts catch-up runs; *pipeline.Engine is the implementation.
type CatchupStarter interface {
	StartCatchup(ctx context.Context, sc runstore.Scope, tick time.Time) (*runstore.Run, error)
}

// SettingsReader gives the saved settings a scheduled catch-up covers.
type SettingsReader interface {
	Get(ctx context.Context) (settings.Settings, error)
}

// NewCatchupHandler handles the scheduler's ticks: each starts a catch-up over the saved
// settings' scope, unless a run of that scope is still active.
func NewCatchupHandler(starter CatchupStarter, st SettingsReader, log zerolog.Logger) asynq.Handler {
	return &catchupHandler{starter: starter, settings: st, log: log}
}

type catchupHandler struct {
	starter  CatchupStarter
	settings SettingsReader
	log      zerolog.Logger
}

func (h *catchupHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseCatchupTickPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	st, err := h.settings.Get(ctx)
	if err != nil {
		return err
	}
	run, err := h.starter.StartCatchup(ctx, st.Scope(), p.Tick)
	var conflict *runstore.ConflictError
	switch {
	case errors.As(err, &conflict):
		return nil // skipped, and said so on the active run
	case err != nil:
		return err
	}
	h.log.Info().Str("run_id", run.ID).Time("tick", p.Tick).Msg("catch-up started")
	return nil
}
