package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sjbackfill/backfill/internal/webhooks"
	"github.com/spf13/cobra"
)

// webhooksCommand is `backfill webhooks install|status|remove`.
func webhooksCommand() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:       "webhooks install|status|remove",
		Short:     "Skilljar's deliveries to this api's /webhooks/skilljar: subscribe, show, unsubscribe",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"install", "status", "remove"},
	}, (*cli).webhooks)
}

// webhooks runs the verb. Status exits 1 when a subscription is deactivated or none is
// installed, so a probe can alert on it.
func (c *cli) webhooks(ctx context.Context, args []string) int {
	var st webhooks.Status
	var err error
	switch args[0] {
	case "install":
		st, err = c.client.InstallWebhooks(ctx)
	case "status":
		st, err = c.client.Webhooks(ctx)
	case "remove":
		st, err = c.client.RemoveWebhooks(ctx)
	default:
		fmt.Fprintf(c.stderr, "backfill webhooks: %q is not install, status or remove\n", args[0])
		return exitUsage
	}
	if err != nil {
		return c.fail("webhooks "+args[0], err)
	}
	describeWebhooks(c.stdout, st)
	if args[0] != "remove" && (st.Deactivated > 0 || len(st.Subscriptions) == 0) {
		return exitFailure
	}
	return exitOK
}

func describeWebhooks(w io.Writer, st webhooks.Status) {
	fmt.Fprintf(w, "target: %s\n", st.TargetURL)
	if len(st.Subscriptions) == 0 {
		fmt.Fprintln(w, "subscriptions: none")
	}
	for _, s := range st.Subscriptions {
		events := s.EventType
		if events == "" {
			events = "all events"
		}
		state := "active"
		if !s.Active {
			state = "DEACTIVATED (" + s.DeactivateReason + "): deliveries are lost; the next catch-up compares every learner; run `backfill webhooks install` to reactivate"
		}
		fmt.Fprintf(w, "subscription %s (%s): %s\n", s.ID, events, state)
		if s.Ping != nil {
			fmt.Fprintf(w, "  ping: succeeded=%v status=%d %s\n", s.Ping.Succeeded, s.Ping.HTTPStatusCode, s.Ping.Message)
		}
	}
	q := st.Queue
	fmt.Fprintf(w, "queue: %d learners waiting", q.Pending)
	if q.OldestPending != nil {
		fmt.Fprintf(w, ", oldest change %s ago", time.Since(*q.OldestPending).Round(time.Second))
	}
	if q.LastArrival != nil {
		fmt.Fprintf(w, "; last delivery %s", q.LastArrival.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "; deliveries queued %d, duplicate %d, ping %d, unknown %d\n",
		q.Deliveries[webhooks.Queued], q.Deliveries[webhooks.Duplicate], q.Deliveries[webhooks.Ping], q.Deliveries[webhooks.Unknown])
}
