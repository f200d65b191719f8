// Package worker runs the asynq side of the backfill: the handlers for the task types in
// package jobs, registered on one mux, and a server configured for long resumable runs.
//
// A slice handler works for about a minute, commits a checkpoint after every batch
// Salesforce accepts, and enqueues its own continuation; on shutdown it finishes the batch in
// hand and hands over, so deploys and kill -9 alike cost at most one batch.
package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/jobs"
)

// SliceRunner advances runs; *pipeline.Engine is the implementation.
type SliceRunner interface {
	RunSlice(ctx context.Context, p jobs.SlicePayload, taskID string, stop <-chan struct{}) error
}

// Deps are what the handlers need.
type Deps struct {
	Slices SliceRunner
	// Catchup, when set, handles the scheduler's catch-up ticks.
	Catchup asynq.Handler
	// WebhookDrain, when set, handles the drains webhook deliveries schedule.
	WebhookDrain asynq.Handler
	Logger       zerolog.Logger
	// Stop is closed when the process begins a graceful shutdown.
	Stop <-chan struct{}
}

// Register installs every handler on mux; a duplicate registration panics at start-up.
func Register(mux *asynq.ServeMux, d Deps) {
	mux.Handle(jobs.TypeSlice, &sliceHandler{runner: d.Slices, stop: d.Stop})
	if d.Catchup != nil {
		mux.Handle(jobs.TypeCatchupTick, d.Catchup)
	}
	if d.WebhookDrain != nil {
		mux.Handle(jobs.TypeWebhookDrain, d.WebhookDrain)
	}
}

type sliceHandler struct {
	runner SliceRunner
	stop   <-chan struct{}
}

func (h *sliceHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseSlicePayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	id, _ := asynq.GetTaskID(ctx)
	return h.runner.RunSlice(ctx, p, id, h.stop)
}

// Config tunes the asynq server.
type Config struct {
	// Concurrency is how many tasks one process runs at once. Defaults to 4: the Skilljar
	// rate limit, not CPU, bounds throughput, and each slice fetches concurrently itself.
	Concurrency int
	// ShutdownTimeout is how long a graceful stop waits for slices to commit the batch in
	// hand. It must cover one Salesforce call; past it asynq requeues the task and the next
	// worker replays that one batch. Defaults to 60s.
	ShutdownTimeout time.Duration
	// PollInterval is how long an idle worker waits before looking for tasks again; it is
	// also the pause between a slice and its continuation. Defaults to asynq's 1s.
	PollInterval time.Duration
}

// Server is an asynq server whose slices are told to wrap up before it stops.
type Server struct {
	srv      *asynq.Server
	mux      *asynq.ServeMux
	stop     chan struct{}
	stopOnce sync.Once
	log      zerolog.Logger
}

// NewServer builds the worker server; call Register on Mux() before Start.
func NewServer(r asynq.RedisConnOpt, cfg Config, log zerolog.Logger) *Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 60 * time.Second
	}
	s := &Server{mux: asynq.NewServeMux(), stop: make(chan struct{}), log: log}
	s.srv = asynq.NewServer(r, asynq.Config{
		Concurrency:       cfg.Concurrency,
		TaskCheckInterval: cfg.PollInterval,
		// Webhook drains and retries are scheduled tasks: asynq's default of moving them to
		// their queue every 5s would add that much to how fresh Salesforce is.
		DelayedTaskCheckInterval: time.Second,
		Queues:                   jobs.QueueWeights,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		IsFailure:                func(err error) bool { return !errors.Is(err, pipeline.ErrRetryLater) },
		RetryDelayFunc:           retryDelay,
		Logger:                   logging.Asynq{L: log},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			n, _ := asynq.GetRetryCount(ctx)
			ev := log.Warn()
			if !errors.Is(err, pipeline.ErrRetryLater) {
				ev = log.Error()
			}
			ev.Err(err).Str("task_id", id).Str("type", t.Type()).Int("retry", n).Msg("task failed; asynq retries it")
		}),
	})
	return s
}

// Mux is where handlers are registered.
func (s *Server) Mux() *asynq.ServeMux { return s.mux }

// Stopping is closed when the server begins shutting down.
func (s *Server) Stopping() <-chan struct{} { return s.stop }

// Run serves until ctx ends, then tells running slices to wrap up and shuts down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Start(s.mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	<-ctx.Done()
	s.log.Info().Msg("worker stopping: slices finish the batch in hand and hand over")
	s.srv.Stop()
	s.stopOnce.Do(func() { close(s.stop) })
	s.srv.Shutdown()
	s.log.Info().Msg("worker stopped")
	return nil
}

// retryDelay waits briefly for conditions that clear by themselves and backs off
// exponentially, with jitter, for real failures.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, pipeline.ErrRetryLater) {
		return time.Second + rand.N(time.Second)
	}
	d := time.Duration(1<<min(n, 8)) * time.Second
	if d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d + rand.N(d/2+time.Millisecond)
}
