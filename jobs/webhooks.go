package jobs

import (
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhookDrain starts a live run that writes the learners webhook deliveries queued.
const TypeWebhookDrain = "webhooks:drain"

// WebhookDrainMaxRetry covers a long backfill or live run holding the scope: the drain
// waits it out a second or two at a time.
const WebhookDrainMaxRetry = 10000

// NewWebhookDrainTask builds the drain due at at, to the second: every delivery within the
// same second schedules the same task, so a burst enqueues one drain a second.
func NewWebhookDrainTask(at time.Time) *asynq.Task {
	sec := at.Truncate(time.Second).Add(time.Second)
	return asynq.NewTask(TypeWebhookDrain, nil,
		asynq.Queue(QueueCritical),
		asynq.TaskID("webhooks:drain:"+strconv.FormatInt(sec.Unix(), 10)),
		asynq.ProcessAt(sec),
		asynq.Timeout(time.Minute),
		asynq.MaxRetry(WebhookDrainMaxRetry),
	)
}
