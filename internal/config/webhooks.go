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

// loadWebhook reads the webhook variables, recording each problem with check so Load
// reports them together with the others.
func loadWebhook(get func(string) string, check func(error) bool) Webhook {
	w := Webhook{URL: get("BACKFILL_WEBHOOK_URL")}
	if w.URL != "" {
		check(checkHTTPURL("BACKFILL_WEBHOOK_URL", w.URL))
	}
	if share, err := strconv.ParseFloat(get("BACKFILL_WEBHOOK_SHARE"), 64); err != nil || share <= 0 || share > 1 {
		check(&Error{"BACKFILL_WEBHOOK_SHARE", fmt.Sprintf("%q is not a share between 0 (exclusive) and 1", get("BACKFILL_WEBHOOK_SHARE"))})
	} else {
		w.Share = share
	}
	if ms, err := positiveInt("BACKFILL_WEBHOOK_DEBOUNCE_MS", get("BACKFILL_WEBHOOK_DEBOUNCE_MS")); check(err) {
		w.Debounce = time.Duration(ms) * time.Millisecond
	}
	if n, err := positiveInt("BACKFILL_WEBHOOK_MAX_BYTES", get("BACKFILL_WEBHOOK_MAX_BYTES")); check(err) {
		w.MaxBytes = int64(n)
	}
	return w
}
