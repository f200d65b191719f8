package service

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/webhooks"
	"github.com/sjbackfill/backfill/jobs"
)

// webhookWatchEvery is how often the api asks Skilljar whether our subscription is still
// active, so a deactivation reaches the page, /metrics and the next catch-up unasked.
const webhookWatchEvery = time.Minute

// buildWebhooks makes the delivery queue (its credentials sealed with the connection's key)
// and, with a Skilljar client, the subscription manager.
func (p *Parts) buildWebhooks(rdb redis.UniversalClient) {
	var sealer webhooks.Sealer
	if p.Connection != nil { // a nil store must not become a non-nil interface
		sealer = p.Connection
	}
	p.Webhooks = webhooks.NewStore(rdb, sealer, webhooks.StoreConfig{Debounce: p.Config.Webhook.Debounce})
	if p.Config.Role == config.RoleAPI { // the shared Redis is exported once, as the runs are
		p.Metrics.WatchWebhooks(p.Webhooks, 5*time.Second)
	}
	if p.Skilljar != nil && sealer != nil {
		p.WebhookManager = webhooks.NewManager(p.Skilljar, p.Webhooks, p.Config.Webhook.URL)
	}
}

// webhookAdmin is the manager for the API, or nil when there is none: a nil manager must
// not become a non-nil interface.
func (p *Parts) webhookAdmin() httpapi.Webhooks {
	if p.WebhookManager == nil {
		return nil
	}
	return p.WebhookManager
}

// liveBudget is the limiter live runs wait on before the shared one: the configured share of
// every Skilljar limit, at least one call per period. Those shares are windows, not a pace:
// a second's worth of the shared limit's pace leads them, so one change is written at the
// shared pace instead of waiting out an even spacing of the share.
func liveBudget(rdb redis.UniversalClient, cfg config.Config) *ratelimit.Limiter {
	limits := make([]ratelimit.Limit, 0, len(cfg.SkilljarRateLimit)+1)
	shortest := cfg.SkilljarRateLimit[0]
	for _, l := range cfg.SkilljarRateLimit {
		limits = append(limits, ratelimit.Limit{Count: max(1, int(math.Floor(float64(l.Count)*cfg.Webhook.Share))), Period: l.Period})
		if l.Period < shortest.Period {
			shortest = l
		}
	}
	if shortest.Period > time.Second {
		perSecond := max(1, int(math.Ceil(float64(shortest.Count)*float64(time.Second)/float64(shortest.Period))))
		limits = append(limits, ratelimit.Limit{Count: perSecond, Period: time.Second})
	}
	return ratelimit.New(rdb, "bf:ratelimit:skilljar-webhooks", limits)
}

// webhookReceiver serves /webhooks/skilljar: each stored delivery schedules the drain on
// the worker queues, after the debounce.
func (p *Parts) webhookReceiver() *webhooks.Receiver {
	return webhooks.NewReceiver(p.Webhooks, webhooks.ReceiverConfig{
		MaxBody: p.Config.Webhook.MaxBytes, Logger: p.Log, Queued: p.scheduleDrain,
	})
}

func (p *Parts) scheduleDrain(ctx context.Context) error {
	_, err := p.Queue.EnqueueContext(ctx, jobs.NewWebhookDrainTask(time.Now().Add(p.Webhooks.Debounce())))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // the drain is already scheduled, retrying or running
	}
	return err
}

// drainSweepEvery is how often the api makes sure a drain is scheduled while learners wait.
const drainSweepEvery = 2 * time.Second

// sweepWebhooks schedules the drain whenever learners wait: a delivery whose enqueue met the
// drain task as it ended (the queue empty, or a run holding the scope that then finished)
// would otherwise wait for the next delivery.
func (p *Parts) sweepWebhooks(ctx context.Context) {
	t := time.NewTicker(drainSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due, waiting, err := p.Webhooks.Due(ctx)
		if err == nil && (due || waiting) {
			err = p.scheduleDrain(ctx)
		}
		if err != nil && ctx.Err() == nil {
			p.Log.Warn().Err(err).Msg("could not schedule the webhook drain")
		}
	}
}

// watchWebhooks refreshes the subscriptions' status until ctx ends.
func (p *Parts) watchWebhooks(ctx context.Context) {
	if p.WebhookManager == nil || p.Config.Webhook.URL == "" {
		return
	}
	p.WebhookManager.Watch(ctx, webhookWatchEvery, func(err error) {
		p.Log.Warn().Err(err).Msg("could not check the Skilljar webhook subscriptions")
	})
}
