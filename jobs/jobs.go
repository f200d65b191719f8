// Package jobs defines the asynq task types the backfill engine enqueues: their stable wire
// names, their small payloads (ids only, never record data) and constructors that always set
// Timeout, MaxRetry, Queue and a TaskID so every enqueue is idempotent.
//
// Type names and payload fields are a wire format: tasks already in Redis must keep working
// across deploys, so never rename them.
package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names.
const (
	// TypeSlice advances one run's current stream for a bounded time, saves its checkpoint
	// and enqueues its own continuation.
	TypeSlice = "backfill:slice"
	// TypeCatchupTick is enqueued by the scheduler on each cron tick; it starts a catch-up run.
	TypeCatchupTick = "backfill:catchup-tick"
)

// Queues, with the weights workers give them: operator-started backfills first, scheduled
// catch-ups after, and short control tasks ahead of both.
const (
	QueueCritical = "critical"
	QueueBackfill = "backfill"
	QueueCatchup  = "catchup"
)

// QueueWeights is the asynq Queues map workers serve.
var QueueWeights = map[string]int{QueueCritical: 6, QueueBackfill: 3, QueueCatchup: 1}

// SliceTimeout bounds one slice attempt. asynq treats Timeout(0) as 30 minutes, never as
// "no limit", so it is always set explicitly. A slice works for about a minute; the rest is
// room for a Bulk API job to finish processing before the checkpoint can move.
const SliceTimeout = 20 * time.Minute

// SliceMaxRetry is generous because a worker killed mid-slice counts as a retry in asynq, and
// the slice resumes from its checkpoint each time, so retries cost at most one batch.
const SliceMaxRetry = 50

// SlicePayload names the run and the slice's place in the run's chain. A slice whose Seq is
// behind the run's is stale and does nothing, so a re-delivered task never runs twice.
type SlicePayload struct {
	RunID string `json:"run_id"`
	Seq   int64  `json:"seq"`
}

// SliceTaskID is the TaskID of a run's Seq-th slice; asynq refuses a second task with the
// same id, which makes enqueueing a continuation idempotent.
func SliceTaskID(runID string, seq int64) string { return fmt.Sprintf("slice:%s:%d", runID, seq) }

// NewSliceTask builds the task for one slice of a run on the given queue.
func NewSliceTask(p SlicePayload, queue string) (*asynq.Task, error) {
	if p.RunID == "" {
		return nil, fmt.Errorf("slice task: run id is empty")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("slice task: encode payload: %w", err)
	}
	return asynq.NewTask(TypeSlice, b,
		asynq.Queue(queue),
		asynq.TaskID(SliceTaskID(p.RunID, p.Seq)),
		asynq.Timeout(SliceTimeout),
		asynq.MaxRetry(SliceMaxRetry),
	), nil
}

// ParseSlicePayload decodes a slice task's payload.
func ParseSlicePayload(b []byte) (SlicePayload, error) {
	var p SlicePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("slice payload: %w", err)
	}
	if p.RunID == "" {
		return p, fmt.Errorf("slice payload: run_id is missing")
	}
	return p, nil
}

// CatchupTickPayload identifies one cron tick; its TaskID is derived from the tick time so two
// scheduler processes firing the same tick enqueue it once.
type CatchupTickPayload struct {
	Tick time.Time `json:"tick"`
}

// CatchupTickTaskID is the TaskID for the tick at t, to the second.
func CatchupTickTaskID(t time.Time) string {
	return "catchup:" + t.UTC().Truncate(time.Second).Format("20060102T150405Z")
}

// CatchupRetention keeps a finished tick task long enough that a second scheduler firing the
// same tick later still collides with its TaskID instead of running the catch-up again.
const CatchupRetention = 2 * time.Hour

// NewCatchupTickTask builds the task for the cron tick at t.
func NewCatchupTickTask(t time.Time) (*asynq.Task, error) {
	tick := t.UTC().Truncate(time.Second)
	b, err := json.Marshal(CatchupTickPayload{Tick: tick})
	if err != nil {
		return nil, fmt.Errorf("catch-up tick task: encode payload: %w", err)
	}
	return asynq.NewTask(TypeCatchupTick, b,
		asynq.Queue(QueueCritical),
		asynq.TaskID(CatchupTickTaskID(tick)),
		asynq.Timeout(time.Minute),
		asynq.MaxRetry(5),
		asynq.Retention(CatchupRetention),
	), nil
}

// ParseCatchupTickPayload decodes a catch-up tick's payload.
func ParseCatchupTickPayload(b []byte) (CatchupTickPayload, error) {
	var p CatchupTickPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("catch-up tick payload: %w", err)
	}
	return p, nil
}
