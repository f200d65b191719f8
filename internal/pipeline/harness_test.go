package pipeline_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/internal/stacktest"
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
	// sinkConfig, when set, changes the engine's Salesforce client configuration.
	sinkConfig func(*salesforce.Config)
	// pageSize, when set, is the page_size the engine's Skilljar client asks for, so a small
	// org spans several pages; wrapSource lets a test put itself between the engine and
	// Skilljar.
	pageSize   int
	wrapSource func(pipeline.Source) pipeline.Source
	// logTo, when set, receives the engine's JSON logs.
	logTo io.Writer
}

// env is a private Redis, both simulators over real HTTP, the real clients and an engine:
// the stacktest stack, with the short names this package's tests use for its parts.
type env struct {
	*stacktest.Stack
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

func setup(t *testing.T, o options) *env {
	t.Helper()
	if o.skilljar.Users == 0 {
		o.skilljar.Users = 120
	}
	if o.skilljar.Seed == 0 {
		o.skilljar.Seed = 7
	}
	s := stacktest.Start(t, stacktest.Options{
		Skilljar: o.skilljar, Salesforce: o.salesforce, Pipeline: o.pipeline,
		RateLimit: o.rateLimit, WrapSink: o.wrapSink, SinkConfig: o.sinkConfig, Log: o.logTo,
	})
	if o.pageSize > 0 || o.wrapSource != nil {
		s.Engine = sourcedEngine(t, s, o)
	}
	return &env{Stack: s, ctx: s.Ctx, redis: s.Redis, sj: s.Skilljar, sf: s.Salesforce, store: s.Store,
		engine: s.Engine, client: s.Queue, log: s.Logger, sfc: s.Sink}
}

// sourcedEngine is the stack's engine reading Skilljar through a client with the test's page
// size, behind the test's wrapper.
func sourcedEngine(t *testing.T, s *stacktest.Stack, o options) *pipeline.Engine {
	t.Helper()
	var src pipeline.Source = s.Source
	if o.pageSize > 0 {
		c, err := skilljar.New(skilljar.Config{BaseURL: s.Skilljar.URL(), APIKey: s.Skilljar.APIKey(), PageSize: o.pageSize,
			RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond, MaxRetries: 8})
		if err != nil {
			t.Fatal(err)
		}
		src = c
	}
	if o.wrapSource != nil {
		src = o.wrapSource(src)
	}
	var sink pipeline.Sink = s.Sink
	if o.wrapSink != nil {
		sink = o.wrapSink(sink)
	}
	e, err := pipeline.New(o.pipeline, pipeline.Deps{Store: s.Store, Source: src, Sink: sink, Contacts: s.Sink,
		Enqueuer: s.Queue, Logger: s.Logger})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startWorker runs an in-process asynq worker until the returned stop is called (or the
// test ends); stop shuts it down gracefully.
func (e *env) startWorker(t *testing.T) (stop func()) { return e.StartWorker(t) }

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
	return e.WaitFor(t, id, timeout, what, cond)
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
	e.RequireExactData(t, domains...)
}
