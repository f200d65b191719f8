package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sjbackfill/backfill/internal/webhooks"
)

// WebhookState reads the webhook side from Redis; *webhooks.Store is one.
type WebhookState interface {
	LastStatus(ctx context.Context) (webhooks.Status, error)
	Stats(ctx context.Context) (webhooks.QueueStats, error)
}

var (
	webhookSubsDesc = prometheus.NewDesc("backfill_webhook_subscriptions",
		"Our Skilljar webhook subscriptions as last checked, by state (active, deactivated) and Skilljar's deactivation reason; any deactivated one means deliveries are lost.",
		[]string{"state", "reason"}, nil)
	webhookPendingDesc = prometheus.NewDesc("backfill_webhook_pending_learners",
		"Learners named by webhook deliveries and not yet written.", nil, nil)
	webhookBehindDesc = prometheus.NewDesc("backfill_webhook_behind_seconds",
		"Age of the oldest change delivered and not yet written: how far behind Salesforce is (0 when nothing waits).", nil, nil)
	webhookDeliveriesDesc = prometheus.NewDesc("backfill_webhook_deliveries_total",
		"Webhook deliveries received, by outcome: queued, duplicate, ping, unknown (no learner could be read from it).", []string{"outcome"}, nil)
)

// WatchWebhooks exports the webhook subscriptions and queue; call it in one role (the api),
// as for the queues and runs.
func (m *Metrics) WatchWebhooks(w WebhookState, timeout time.Duration) {
	m.reg.MustRegister(&webhookCollector{state: w, timeout: timeout})
}

type webhookCollector struct {
	state   WebhookState
	timeout time.Duration
}

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{webhookSubsDesc, webhookPendingDesc, webhookBehindDesc, webhookDeliveriesDesc} {
		ch <- d
	}
}

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.state.LastStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(webhookSubsDesc, fmt.Errorf("read webhook status: %w", err))
		return
	}
	byState := map[[2]string]float64{{"active", ""}: 0}
	for _, s := range st.Subscriptions {
		if s.Active {
			byState[[2]string{"active", ""}]++
		} else {
			byState[[2]string{"deactivated", s.DeactivateReason}]++
		}
	}
	for k, n := range byState {
		ch <- prometheus.MustNewConstMetric(webhookSubsDesc, prometheus.GaugeValue, n, k[0], k[1])
	}
	q, err := c.state.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(webhookPendingDesc, fmt.Errorf("read webhook queue: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(webhookPendingDesc, prometheus.GaugeValue, float64(q.Pending))
	behind := 0.0
	if q.OldestPending != nil {
		behind = time.Since(*q.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(webhookBehindDesc, prometheus.GaugeValue, behind)
	for _, outcome := range []string{webhooks.Queued, webhooks.Duplicate, webhooks.Ping, webhooks.Unknown} {
		ch <- prometheus.MustNewConstMetric(webhookDeliveriesDesc, prometheus.CounterValue, float64(q.Deliveries[outcome]), outcome)
	}
}
