package apiclient

import (
	"context"
	"net/http"

	"github.com/sjbackfill/backfill/internal/webhooks"
)

// Webhooks reports our Skilljar webhook subscriptions and the delivery queue.
func (c *Client) Webhooks(ctx context.Context) (webhooks.Status, error) {
	return c.webhooks(ctx, http.MethodGet)
}

// InstallWebhooks creates or updates our subscription and pings it.
func (c *Client) InstallWebhooks(ctx context.Context) (webhooks.Status, error) {
	return c.webhooks(ctx, http.MethodPost)
}

// RemoveWebhooks deletes our subscriptions and their credentials.
func (c *Client) RemoveWebhooks(ctx context.Context) (webhooks.Status, error) {
	return c.webhooks(ctx, http.MethodDelete)
}

func (c *Client) webhooks(ctx context.Context, method string) (webhooks.Status, error) {
	var st webhooks.Status
	err := c.do(ctx, method, "/v1/webhooks", nil, nil, &st)
	return st, err
}
