package service

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/jobs"
)

// nextTick is the schedule's next tick after now. An "@every" interval is aligned to the
// epoch, so every scheduler process computes the same ticks and their task ids collide.
func nextTick(s cron.Schedule, now time.Time) time.Time {
	if d, ok := s.(cron.ConstantDelaySchedule); ok {
		return now.Truncate(d.Delay).Add(d.Delay)
	}
	return s.Next(now)
}

// RunScheduler enqueues a catch-up tick at each tick of BACKFILL_CATCHUP_CRON until ctx ends.
// Every scheduler process may run: each tick's task id comes from its time, so a second
// process enqueueing the same tick is refused by asynq and the catch-up runs once.
func RunScheduler(ctx context.Context, r asynq.RedisConnOpt, spec string, log zerolog.Logger) error {
	if spec == "off" {
		log.Info().Msg("catch-up runs are off (BACKFILL_CATCHUP_CRON=off)")
		<-ctx.Done()
		return nil
	}
	sched, err := config.ParseSchedule(spec)
	if err != nil {
		return &config.Error{Var: "BACKFILL_CATCHUP_CRON", Expect: err.Error()}
	}
	client := asynq.NewClient(r)
	defer client.Close()
	for {
		tick := nextTick(sched, time.Now().UTC())
		log.Info().Time("next_tick", tick).Msg("scheduler waiting for the next catch-up tick")
		select {
		case <-ctx.Done():
			log.Info().Msg("scheduler stopped")
			return nil
		case <-time.After(time.Until(tick)):
		}
		task, err := jobs.NewCatchupTickTask(tick)
		if err != nil {
			return err
		}
		_, err = client.EnqueueContext(ctx, task)
		switch {
		case errors.Is(err, asynq.ErrTaskIDConflict):
			log.Debug().Time("tick", tick).Msg("another scheduler already enqueued this tick")
		case err != nil:
			log.Error().Err(err).Time("tick", tick).Msg("could not enqueue the catch-up tick; the next tick will try again")
		default:
			log.Info().Time("tick", tick).Msg("catch-up tick enqueued")
		}
	}
}
