package webui

import (
	"context"
	"time"

	"github.com/sjbackfill/backfill/internal/webhooks"
)

// WebhookState reads what the webhook side last saw; *webhooks.Store is one. The page reads
// the status the api last fetched from Skilljar (every minute) rather than call Skilljar.
type WebhookState interface {
	LastStatus(ctx context.Context) (webhooks.Status, error)
	Stats(ctx context.Context) (webhooks.QueueStats, error)
}

// webhooksView is the "Skilljar webhooks" block: red while a subscription is deactivated.
type webhooksView struct {
	Err    string
	Status webhooks.Status
	Queue  webhooks.QueueStats
	// Behind is how long the oldest change still waiting has waited: how far behind
	// Salesforce is.
	Behind time.Duration
}

// State is what the block shows: off, ok or bad.
func (v webhooksView) State() string {
	switch {
	case v.Err != "" || v.Status.Deactivated > 0:
		return "bad"
	case len(v.Status.Subscriptions) == 0:
		return "off"
	}
	return "ok"
}

// Reasons are the deactivation reasons Skilljar gave.
func (v webhooksView) Reasons() []string {
	var out []string
	for _, s := range v.Status.Subscriptions {
		if !s.Active {
			out = append(out, s.DeactivateReason)
		}
	}
	return out
}

func (h *Handler) webhooks(ctx context.Context) *webhooksView {
	if h.d.Webhooks == nil {
		return nil
	}
	st, err := h.d.Webhooks.LastStatus(ctx)
	if err != nil {
		return &webhooksView{Err: err.Error()}
	}
	q, err := h.d.Webhooks.Stats(ctx)
	if err != nil {
		return &webhooksView{Err: err.Error(), Status: st}
	}
	v := &webhooksView{Status: st, Queue: q}
	if q.OldestPending != nil {
		v.Behind = time.Since(*q.OldestPending).Round(time.Second)
	}
	return v
}
