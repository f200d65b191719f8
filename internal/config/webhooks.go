package config

import (
	"fmt"
	"strconv"
	"time"
)

// webhookVars are the variables of Skilljar webhooks; they join Vars at start-up so this
// feature's documentation lives next to its parsing.
var webhookVars = []Var{
	{Name: "BACKFILL_WEBHOOK_URL", Roles: []string{RoleAPI}, Doc: "Public URL of this api's /webhooks/skilljar, where Skilljar delivers changes; `backfill webhooks install` subscribes it. Empty disables installing."},
	{Name: "BACKFILL_WEBHOOK_SHARE", Roles: []string{RoleWorker}, Default: "0.25", Doc: "Share of SKILLJAR_RATE_LIMIT that runs driven by webhook deliveries may take, so a burst never starves a running backfill (0 < share ≤ 1)."},
	{Name: "BACKFILL_WEBHOOK_DEBOUNCE_MS", Roles: []string{RoleAPI, RoleWorker}, Default: "1000", Doc: "How long a learner named by a delivery waits for further deliveries before it is written, in milliseconds: a burst for one learner costs one lookup."},
	{Name: "BACKFILL_WEBHOOK_MAX_BYTES", Roles: []string{RoleAPI}, Default: "65536", Doc: "Largest webhook delivery accepted; a larger one is refused with 413."},
}

func init() { Vars = append(Vars, webhookVars...) }

// Webhook is the webhook part of the configuration.
type Webhook struct {
	URL      string
	Share    float64
	Debounce time.Duration
	MaxBytes int64
}

func loadWebhook(get func(string) string) (Webhook, error) {
	w := Webhook{URL: get("BACKFILL_WEBHOOK_URL")}
	if w.URL != "" {
		if err := checkHTTPURL("BACKFILL_WEBHOOK_URL", w.URL); err != nil {
			return w, err
		}
	}
	share, err := strconv.ParseFloat(get("BACKFILL_WEBHOOK_SHARE"), 64)
	if err != nil || share <= 0 || share > 1 {
		return w, &Error{"BACKFILL_WEBHOOK_SHARE", fmt.Sprintf("%q is not a share between 0 (exclusive) and 1", get("BACKFILL_WEBHOOK_SHARE"))}
	}
	w.Share = share
	ms, err := positiveInt("BACKFILL_WEBHOOK_DEBOUNCE_MS", get("BACKFILL_WEBHOOK_DEBOUNCE_MS"))
	if err != nil {
		return w, err
	}
	w.Debounce = time.Duration(ms) * time.Millisecond
	n, err := positiveInt("BACKFILL_WEBHOOK_MAX_BYTES", get("BACKFILL_WEBHOOK_MAX_BYTES"))
	w.MaxBytes = int64(n)
	return w, err
}
