package worker

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// LeaseSweeper takes over runs whose holder stopped renewing its lease; *pipeline.Engine is
// the implementation.
type LeaseSweeper interface {
	SweepLeases(ctx context.Context) (int, error)
}

// LeaseSweepInterval is how often every worker process looks for lapsed run leases: a dead
// worker's run goes on within this much of its lease lapsing.
const LeaseSweepInterval = 2 * time.Second

// SweepLeases runs sw every interval until ctx ends. Every worker process sweeps, so a run
// goes on while any worker lives; the take-over is atomic, so concurrent sweeps are safe.
func SweepLeases(ctx context.Context, sw LeaseSweeper, interval time.Duration, log zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := sw.SweepLeases(ctx); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("lease sweep failed; the next one tries again")
		}
	}
}
