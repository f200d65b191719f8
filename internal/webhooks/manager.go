package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Skilljar manages subscriptions; *skilljar.Client is one.
type Skilljar interface {
	Webhooks(ctx context.Context) ([]skilljar.Webhook, error)
	CreateWebhook(ctx context.Context, w skilljar.Webhook) (skilljar.Webhook, error)
	UpdateWebhook(ctx context.Context, w skilljar.Webhook) (skilljar.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	PingWebhook(ctx context.Context, id string) (skilljar.PingResult, error)
}

// Subscription is one of our subscriptions as Skilljar reports it; it holds no secret.
type Subscription struct {
	ID        string `json:"id"`
	EventType string `json:"event_type,omitempty"`
	Active    bool   `json:"active"`
	// DeactivateReason is Skilljar's reason when it turned the subscription off.
	DeactivateReason string `json:"deactivate_reason,omitempty"`
	// Ping is the result of the ping install sends.
	Ping *skilljar.PingResult `json:"ping,omitempty"`
}

// Status is our subscriptions and the delivery queue.
type Status struct {
	TargetURL     string         `json:"target_url"`
	Subscriptions []Subscription `json:"subscriptions"`
	// Deactivated counts subscriptions Skilljar turned off: deliveries are being lost.
	Deactivated int        `json:"deactivated"`
	CheckedAt   time.Time  `json:"checked_at"`
	Queue       QueueStats `json:"queue"`
}

// Manager creates, inspects and removes the subscriptions that point at TargetURL.
type Manager struct {
	sj     Skilljar
	store  *Store
	target string
}

// NewManager returns a manager of the subscriptions to target, the public URL of the api's
// /webhooks/skilljar.
func NewManager(sj Skilljar, store *Store, target string) *Manager {
	return &Manager{sj: sj, store: store, target: target}
}

// ErrNoTarget means the public URL of the receiver is not configured.
var ErrNoTarget = errors.New("BACKFILL_WEBHOOK_URL is not set: Skilljar needs the public URL of this api's /webhooks/skilljar")

// Install makes sure one active subscription to every event type points at the receiver with
// the current credentials: it updates ours (reactivating a deactivated one) or creates one,
// removes extra copies, and pings it.
func (m *Manager) Install(ctx context.Context) (Status, error) {
	if m.target == "" {
		return Status{}, ErrNoTarget
	}
	creds, err := m.store.EnsureCredentials(ctx)
	if err != nil {
		return Status{}, err
	}
	ours, err := m.ours(ctx)
	if err != nil {
		return Status{}, err
	}
	want := skilljar.Webhook{TargetURL: m.target, Active: true, BasicAuthUsername: creds.Username, BasicAuthPassword: creds.Password}
	var w skilljar.Webhook
	if len(ours) == 0 {
		w, err = m.sj.CreateWebhook(ctx, want)
	} else {
		want.ID = ours[0].ID
		w, err = m.sj.UpdateWebhook(ctx, want)
		for _, extra := range ours[1:] {
			if err == nil {
				err = m.sj.DeleteWebhook(ctx, extra.ID)
			}
		}
	}
	if err != nil {
		return Status{}, fmt.Errorf("install the Skilljar webhook: %w", err)
	}
	ping, err := m.sj.PingWebhook(ctx, w.ID)
	if err != nil {
		return Status{}, fmt.Errorf("ping the Skilljar webhook: %w", err)
	}
	sub := subscription(w)
	sub.Ping = &ping
	return m.record(ctx, []Subscription{sub})
}

// Status reports our subscriptions as Skilljar has them now. Seeing one deactivated marks
// the next catch-up to run full change detection, since deliveries were lost meanwhile.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	ours, err := m.ours(ctx)
	if err != nil {
		return Status{}, err
	}
	subs := make([]Subscription, len(ours))
	for i, w := range ours {
		subs[i] = subscription(w)
	}
	return m.record(ctx, subs)
}

// Remove deletes our subscriptions and forgets the credentials.
func (m *Manager) Remove(ctx context.Context) (Status, error) {
	ours, err := m.ours(ctx)
	if err != nil {
		return Status{}, err
	}
	for _, w := range ours {
		if err := m.sj.DeleteWebhook(ctx, w.ID); err != nil {
			return Status{}, fmt.Errorf("remove the Skilljar webhook %s: %w", w.ID, err)
		}
	}
	if err := m.store.DeleteCredentials(ctx); err != nil {
		return Status{}, err
	}
	return m.record(ctx, nil)
}

// Watch refreshes the status every interval until ctx ends, so a deactivation shows on the
// page and in /metrics, and reaches the catch-up, without anyone asking.
func (m *Manager) Watch(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Status(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoTarget) {
				onErr(err)
			}
		}
	}
}

// ours lists the subscriptions whose target is the receiver.
func (m *Manager) ours(ctx context.Context) ([]skilljar.Webhook, error) {
	if m.target == "" {
		return nil, ErrNoTarget
	}
	all, err := m.sj.Webhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Skilljar webhooks: %w", err)
	}
	var ours []skilljar.Webhook
	for _, w := range all {
		if w.TargetURL == m.target {
			ours = append(ours, w)
		}
	}
	return ours, nil
}

func (m *Manager) record(ctx context.Context, subs []Subscription) (Status, error) {
	st := Status{TargetURL: m.target, Subscriptions: subs, CheckedAt: time.Now().UTC()}
	if st.Subscriptions == nil {
		st.Subscriptions = []Subscription{}
	}
	for _, s := range subs {
		if !s.Active {
			st.Deactivated++
		}
	}
	if st.Deactivated > 0 {
		if err := m.store.MarkFullDetection(ctx); err != nil {
			return st, err
		}
	}
	q, err := m.store.Stats(ctx)
	if err != nil {
		return st, err
	}
	st.Queue = q
	return st, m.store.saveStatus(ctx, st)
}

func subscription(w skilljar.Webhook) Subscription {
	s := Subscription{ID: w.ID, Active: w.Active}
	if w.EventType != nil {
		s.EventType = *w.EventType
	}
	if w.DeactivateReason != nil {
		s.DeactivateReason = *w.DeactivateReason
	}
	return s
}
