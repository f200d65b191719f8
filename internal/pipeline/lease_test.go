package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/rediskey"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/jobs"
)

// stuckSink holds the first write until its context ends, as a Salesforce call in flight
// on a worker that lost its run would.
type stuckSink struct {
	pipeline.Sink
	once    sync.Once
	entered chan struct{}
	ended   chan error
}

func (s *stuckSink) stick(ctx context.Context) (bool, error) {
	stuck := false
	s.once.Do(func() {
		stuck = true
		close(s.entered)
		<-ctx.Done()
		s.ended <- ctx.Err()
	})
	return stuck, ctx.Err()
}

func (s *stuckSink) Upsert(ctx context.Context, sobject, ext string, recs []salesforce.Record) ([]salesforce.Result, error) {
	if stuck, err := s.stick(ctx); stuck {
		return nil, err
	}
	return s.Sink.Upsert(ctx, sobject, ext, recs)
}

func (s *stuckSink) BulkUpsert(ctx context.Context, sobject, ext string, recs []salesforce.Record) ([]salesforce.Result, error) {
	if stuck, err := s.stick(ctx); stuck {
		return nil, err
	}
	return s.Sink.BulkUpsert(ctx, sobject, ext, recs)
}

func TestASliceWhoseRunIsTakenOverStopsMidCallAndTheContinuationFinishesTheRunExact(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	// The holder renews every 100 ms, so it learns of the take-over within that.
	sink := &stuckSink{Sink: e.Sink, entered: make(chan struct{}), ended: make(chan error, 1)}
	holder, err := pipeline.New(pipeline.Config{}, pipeline.Deps{Store: runstore.New(e.RDB, runstore.Options{Lease: 500 * time.Millisecond}),
		Source: e.Source, Sink: sink, Enqueuer: e.client, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	returned := make(chan error, 1)
	go func() { returned <- holder.RunSlice(e.ctx, jobs.SlicePayload{RunID: run.ID, Seq: 0}, "holder", nil) }()
	<-sink.entered

	// A sweep leaves a run under a live lease alone.
	if n, err := e.engine.SweepLeases(e.ctx); err != nil || n != 0 {
		t.Fatalf("sweep under a live lease: took over %d, err %v", n, err)
	}
	// The holder's lease lapses as it would behind a network partition longer than the lease.
	if err := e.RDB.Del(e.ctx, rediskey.Prefix+"run:{"+run.ID+"}:lease").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.engine.SweepLeases(e.ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the lease lapsed: took over %d, err %v; want 1", n, err)
	}
	select {
	case err := <-sink.ended:
		if err == nil {
			t.Fatal("the stuck call ended without its context ending")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the taken-over slice's Salesforce call was not cancelled")
	}
	if err := <-returned; err != nil {
		t.Fatalf("the taken-over slice returned %v; it must end as a no-op so asynq does not retry it", err)
	}
	got, err := e.store.Get(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.Progress.Done != 0 {
		t.Fatalf("after the take-over: seq %d, progress %d; want seq 1 and nothing committed", got.Seq, got.Progress.Done)
	}
	events, _ := e.store.Events(e.ctx, run.ID, 0)
	if !hasEvent(events, "taken_over") {
		t.Fatalf("no taken_over event in %+v", events)
	}

	// The worker runs slice 0's task left in the queue (stale: a no-op) and the continuation
	// the sweep enqueued.
	e.startWorker(t)
	e.requireExact(t, e.wait(t, run.ID, 60*time.Second))
	if held, _ := e.store.Held(e.ctx); len(held) != 0 {
		t.Fatalf("runs still held after the run ended: %v", held)
	}
}

func hasEvent(events []runstore.Event, kind string) bool {
	for _, ev := range events {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

// failingSink fails every write as a Salesforce outage would.
type failingSink struct{ pipeline.Sink }

var errOutage = errors.New("salesforce is down")

func (failingSink) Upsert(context.Context, string, string, []salesforce.Record) ([]salesforce.Result, error) {
	return nil, errOutage
}

func (failingSink) BulkUpsert(context.Context, string, string, []salesforce.Record) ([]salesforce.Result, error) {
	return nil, errOutage
}

func TestASliceThatFailsGivesItsRunBackForAsynqToRetry(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	failing, err := pipeline.New(pipeline.Config{}, pipeline.Deps{Store: e.store, Source: e.Source, Sink: failingSink{e.Sink},
		Enqueuer: e.client, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections})
	if err := failing.RunSlice(e.ctx, jobs.SlicePayload{RunID: run.ID, Seq: 0}, "failing", nil); !errors.Is(err, errOutage) {
		t.Fatalf("RunSlice: got %v, want the outage for asynq to retry", err)
	}
	if held, _ := e.store.Held(e.ctx); len(held) != 0 {
		t.Fatalf("a failed slice left its run held: %v; its retry is asynq's", held)
	}
	// Slice 0's task in the queue stands for asynq's retry: it claims the run again.
	e.startWorker(t)
	e.requireExact(t, e.wait(t, run.ID, 60*time.Second))
}
