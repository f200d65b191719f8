package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/jobs"
)

func TestSliceTaskCarriesTimeoutRetriesQueueAndAnIdempotentTaskID(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr})
	defer client.Close()

	task, err := jobs.NewSliceTask(jobs.SlicePayload{RunID: "r1", Seq: 3}, jobs.QueueBackfill)
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != jobs.QueueBackfill || info.ID != "slice:r1:3" || info.MaxRetry != jobs.SliceMaxRetry || info.Timeout != jobs.SliceTimeout {
		t.Fatalf("task info %+v", info)
	}
	if _, err := client.Enqueue(task); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("second enqueue of the same slice: %v, want ErrTaskIDConflict", err)
	}
	p, err := jobs.ParseSlicePayload(info.Payload)
	if err != nil || p.RunID != "r1" || p.Seq != 3 {
		t.Fatalf("payload round trip: %+v %v", p, err)
	}
}

func TestCatchupTicksShareATaskIDOnlyWhenTheyAreTheSameTick(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 6, 0, 12, 0, time.UTC)
	if jobs.CatchupTickTaskID(at) != jobs.CatchupTickTaskID(at.Add(300*time.Millisecond)) {
		t.Fatal("two schedulers enqueueing the same tick must collide")
	}
	if jobs.CatchupTickTaskID(at) == jobs.CatchupTickTaskID(at.Add(2*time.Second)) {
		t.Fatal("different ticks must not collide")
	}
}

func TestParseSlicePayloadRejectsAPayloadWithoutRunID(t *testing.T) {
	t.Parallel()
	if _, err := jobs.ParseSlicePayload([]byte(`{"seq":1}`)); err == nil {
		t.Fatal("want an error for a payload without run_id")
	}
}
