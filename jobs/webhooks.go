package jobs

import (
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhookDrain starts a live run that writes the learners webhook deliveries queued.
const TypeWebhookDrain = "webhooks:drain"

// WebhookDrainMaxRetry covers a drain waiting, a second or two at a time, for debounces to
// end: at most ten debounces, so debounces up to about 25 minutes. An archived drain would
// keep its task id and block every later one.
const WebhookDrainMaxRetry = 10000

// WebhookDrainTaskID is the one drain task: while it is scheduled, waiting to retry or
// running, a delivery's enqueue collides with it, so a burst makes one drain, not one each.
const WebhookDrainTaskID = "webhooks:drain"

// NewWebhookDrainTask builds the drain due at at.
func NewWebhookDrainTask(at time.Time) *asynq.Task {
	return asynq.NewTask(TypeWebhookDrain, nil,
		asynq.Queue(QueueCritical),
		asynq.TaskID(WebhookDrainTaskID),
		asynq.ProcessAt(at),
		asynq.Timeout(time.Minute),
		asynq.MaxRetry(WebhookDrainMaxRetry),
	)
}
