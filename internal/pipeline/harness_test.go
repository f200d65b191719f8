package pipeline_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/simclient"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/worker"
)

// options shape one test environment.
type options struct {
	skilljar   skilljarsim.Config
	salesforce salesforcesim.Config
	pipeline   pipeline.Config
	// rateLimit, when set, paces the client through the Redis-shared limiter ("600/1m").
	rateLimit string
	// wrapSink lets a test put itself between the engine and Salesforce.
	wrapSink func(pipeline.Sink) pipeline.Sink
	// logTo, when set, receives the engine's JSON logs at debug level.
	logTo io.Writer
}

// env is a private Redis, both simulators over real HTTP, the real clients and an engine.
type env struct {
	ctx    context.Context
	redis  *redistest.Server
	sj     *skilljarsim.Sim
	sf     *salesforcesim.Sim
	store  *runstore.Store
	engine *pipeline.Engine
	client *asynq.Client
	log    zerolog.Logger
	// sfc is the engine's own Salesforce client, for tests that set the org up.
	sfc *salesforce.Client
}

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("TEST_LOG") != "" {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.New(io.Discard)
}

func setup(t *testing.T, o options) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{ctx: ctx, redis: redistest.Start(t), log: testLogger(t)}
	if o.logTo != nil {
		e.log = zerolog.New(o.logTo).Level(zerolog.DebugLevel)
	}
	var err error
	if o.skilljar.Users == 0 {
		o.skilljar.Users = 120
	}
	if o.skilljar.Seed == 0 {
		o.skilljar.Seed = 7
	}
	if e.sj, err = skilljarsim.Start(o.skilljar, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sj.Close() })
	if e.sf, err = salesforcesim.Start(o.salesforce, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sf.Close() })

	rdb := e.redis.Client(t)
	var limiter skilljar.Limiter
	if o.rateLimit != "" {
		limits, err := ratelimit.ParseLimits(o.rateLimit)
		if err != nil {
			t.Fatal(err)
		}
		limiter = ratelimit.New(rdb, "skilljar", limits)
	}
	src, err := simclient.Skilljar(e.sj, limiter)
	if err != nil {
		t.Fatal(err)
	}
	sfc, err := simclient.Salesforce(e.sf)
	if err != nil {
		t.Fatal(err)
	}
	e.sfc = sfc
	var sink pipeline.Sink = sfc
	if o.wrapSink != nil {
		sink = o.wrapSink(sink)
	}
	e.store = runstore.New(rdb, runstore.Options{})
	e.client = asynq.NewClient(asynq.RedisClientOpt{Addr: e.redis.Addr})
	t.Cleanup(func() { _ = e.client.Close() })
	e.engine, err = pipeline.New(o.pipeline, pipeline.Deps{
		Store: e.store, Source: src, Sink: sink, Enqueuer: e.client, Logger: e.log, Contacts: sfc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startWorker runs an in-process asynq worker until the returned stop is called (or the
// test ends); stop shuts it down gracefully.
func (e *env) startWorker(t *testing.T) (stop func()) {
	t.Helper()
	srv := worker.NewServer(asynq.RedisClientOpt{Addr: e.redis.Addr},
		worker.Config{Concurrency: 2, ShutdownTimeout: 20 * time.Second, PollInterval: 50 * time.Millisecond}, e.log)
	worker.Register(srv.Mux(), worker.Deps{Slices: e.engine, Stop: srv.Stopping(), Logger: e.log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) start(t *testing.T, sc runstore.Scope) *runstore.Run {
	t.Helper()
	run, created, err := e.engine.Start(e.ctx, pipeline.StartRequest{Scope: sc, Trigger: "test"})
	if err != nil || !created {
		t.Fatalf("start: created=%v err=%v", created, err)
	}
	return run
}

// wait watches the run until it ends, failing the test after timeout.
func (e *env) wait(t *testing.T, id string, timeout time.Duration) *runstore.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	run, err := e.engine.Watch(ctx, id, 50*time.Millisecond, nil)
	if err != nil {
		events, _ := e.store.Events(e.ctx, id, 20)
		t.Fatalf("run %s did not end within %s: state %v, err %v; events %+v", id, timeout, stateOf(run), err, events)
	}
	return run
}

// waitFor polls until cond holds for the run.
func (e *env) waitFor(t *testing.T, id string, timeout time.Duration, what string, cond func(*runstore.Run) bool) *runstore.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		run, err := e.store.Get(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %s did not happen within %s (state %s, progress %+v)", id, what, timeout, run.State, run.Progress)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateOf(r *runstore.Run) runstore.State {
	if r == nil {
		return ""
	}
	return r.State
}

// requireExact fails the test unless Salesforce holds exactly the source's records of the
// domains (all when none), field by field, and the run's counters add up and say so.
func (e *env) requireExact(t *testing.T, run *runstore.Run, domains ...string) {
	t.Helper()
	if run.State != runstore.Succeeded {
		events, _ := e.store.Events(e.ctx, run.ID, 10)
		t.Fatalf("run %s ended %s (%s); events %+v", run.ID, run.State, run.Error, events)
	}
	e.requireExactData(t, domains...)
	for obj, c := range run.Counters {
		if !c.Balanced() {
			t.Errorf("%s counters do not add up: %+v", obj, c)
		}
	}
	if run.Summary == nil || run.Summary.Verdict != "exact" {
		t.Errorf("run summary %+v, want verdict exact", run.Summary)
	}
}

// requireExactData fails the test unless Salesforce holds exactly the source's records of the
// domains (all when none), field by field.
func (e *env) requireExactData(t *testing.T, domains ...string) {
	t.Helper()
	if rep := simcheck.Compare(e.sj.Org(), e.sf, domains...); !rep.Exact() {
		t.Fatalf("Salesforce differs from the source:\n%s", rep)
	}
}
