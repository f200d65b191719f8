package skilljar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Webhook is a subscription (schema WebHook of the v1 document, paths /v1/webhooks). There
// is no signature on deliveries: the receiver authenticates them by the basic-auth
// credentials or additional headers it asked for.
type Webhook struct {
	ID        string `json:"id,omitempty"`
	TargetURL string `json:"target_url"`
	Active    bool   `json:"active"`
	// DeactivateReason is HTTP_4XX_RESPONSE, RETRY_COUNT, TOO_MANY_REDIRECTS or ORG_DISABLED
	// once Skilljar turned the subscription off; nil while active.
	DeactivateReason *string `json:"deactivate_reason,omitempty"`
	// EventType is one EventTypeEnum value; nil subscribes to every event type.
	EventType         *string           `json:"event_type"`
	BasicAuthUsername string            `json:"basic_auth_username"`
	BasicAuthPassword string            `json:"basic_auth_password"`
	AdditionalHeaders map[string]string `json:"additional_headers,omitempty"`
}

// PingResult is the answer of POST /v1/webhooks/{id}/ping.
type PingResult struct {
	Succeeded      bool   `json:"succeeded"`
	HTTPStatusCode int    `json:"http_status_code"`
	Message        string `json:"message"`
}

// Webhooks lists the organisation's subscriptions, all pages.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	return all[Webhook](ctx, c, "webhooks", c.url("/v1/webhooks", nil))
}

// CreateWebhook subscribes w (its ID is ignored) and returns the stored subscription.
func (c *Client) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	w.ID, w.DeactivateReason = "", nil
	var out Webhook
	return out, c.send(ctx, http.MethodPost, "webhooks_create", c.url("/v1/webhooks", nil), w, &out)
}

// UpdateWebhook replaces subscription w.ID (PUT) and returns it; setting Active turns a
// deactivated subscription back on.
func (c *Client) UpdateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	id := w.ID
	w.ID, w.DeactivateReason = "", nil
	var out Webhook
	return out, c.send(ctx, http.MethodPut, "webhooks_update", c.webhookURL(id, ""), w, &out)
}

// DeleteWebhook removes a subscription; one already gone is not an error.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	err := c.send(ctx, http.MethodDelete, "webhooks_destroy", c.webhookURL(id, ""), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// PingWebhook asks Skilljar to POST a PING event to the subscription's target. A failed
// ping neither deactivates the subscription nor is retried by Skilljar.
func (c *Client) PingWebhook(ctx context.Context, id string) (PingResult, error) {
	var out PingResult
	return out, c.send(ctx, http.MethodPost, "webhooks_ping", c.webhookURL(id, "/ping"), nil, &out)
}

// User reads one learner's org-wide view (GET /v1/users/{id}, users_retrieve).
func (c *Client) User(ctx context.Context, id string) (UserOverview, error) {
	var u UserOverview
	if id == "" {
		return u, errors.New("skilljar: User needs a user id")
	}
	err := c.get(ctx, "user", c.url("/v1/users/"+url.PathEscape(id), nil), func(b []byte) error { return json.Unmarshal(b, &u) })
	return u, err
}

// UserByEmail finds a learner by exact email through the users_list filter; ErrNotFound
// when none has it.
func (c *Client) UserByEmail(ctx context.Context, email string) (UserOverview, error) {
	p, err := fetchPage[UserOverview](ctx, c, "users", c.url("/v1/users", url.Values{"email": {email}}))
	if err != nil {
		return UserOverview{}, err
	}
	for _, u := range p.Results {
		if u.User.Email == email {
			return u, nil
		}
	}
	return UserOverview{}, fmt.Errorf("%w: no learner with that email", ErrNotFound)
}

// DomainUser reads one learner's membership of a domain (GET /v1/domains/{domain}/users/{id});
// ErrNotFound when the learner is not a member.
func (c *Client) DomainUser(ctx context.Context, domain, id string) (DomainUser, error) {
	var u DomainUser
	target := c.url("/v1/domains/"+url.PathEscape(domain)+"/users/"+url.PathEscape(id), nil)
	err := c.get(ctx, "domain_user", target, func(b []byte) error { return json.Unmarshal(b, &u) })
	return u, err
}

func (c *Client) webhookURL(id, suffix string) string {
	return c.url("/v1/webhooks/"+url.PathEscape(id)+suffix, nil)
}

// send makes one write call through the shared limiter: writes are not retried, since a
// create that timed out may still have happened; the caller reconciles by listing.
func (c *Client) send(ctx context.Context, method, endpoint, target string, in, out any) error {
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return fmt.Errorf("skilljar: encode %s: %w", endpoint, err)
		}
	}
	if err := c.wait(ctx); err != nil {
		return err
	}
	status, _, body, err := c.attemptWith(ctx, method, endpoint, target, payload)
	switch {
	case err != nil:
		return err
	case status < 200 || status > 299:
		e := c.apiError(target, status, body)
		e.Method = method
		return e
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &MalformedPageError{URL: target, Err: err}
	}
	return nil
}
