// Package apiclient is a typed Go client for the backfill HTTP API, for the CLI verbs and
// the demo.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
)

// Client calls one backfill API. Every error answer comes back as *httpapi.Error, carrying
// the status, code, message, field and, for run_active, the active run's id.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for the API at baseURL (such as http://127.0.0.1:8080) using the
// API token. httpClient may be nil for one with a 30 s timeout.
func New(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apiclient: %q is not an http(s) URL such as http://127.0.0.1:8080", baseURL)
	}
	if token == "" {
		return nil, errors.New("apiclient: the API token is empty; set BACKFILL_API_TOKEN")
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: httpClient}, nil
}

// Start starts a backfill; fields left empty in body come from the saved settings. A
// non-empty idempotencyKey makes a repeated call return the run the first one created.
func (c *Client) Start(ctx context.Context, body httpapi.StartBody, idempotencyKey string) (*runstore.Run, error) {
	var run runstore.Run
	hdr := http.Header{}
	if idempotencyKey != "" {
		hdr.Set(httpapi.IdempotencyKeyHeader, idempotencyKey)
	}
	if err := c.do(ctx, http.MethodPost, "/v1/backfills", hdr, body, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// List returns the most recent runs, newest first; limit 0 takes the server's default.
func (c *Client) List(ctx context.Context, limit int) ([]*runstore.Run, error) {
	var list httpapi.RunList
	err := c.do(ctx, http.MethodGet, "/v1/backfills"+query("limit", limit), nil, nil, &list)
	return list.Runs, err
}

// Get returns a run.
func (c *Client) Get(ctx context.Context, id string) (*runstore.Run, error) {
	return c.run(ctx, http.MethodGet, id, "")
}

// Pause stops a run after its current batch.
func (c *Client) Pause(ctx context.Context, id string) (*runstore.Run, error) {
	return c.run(ctx, http.MethodPost, id, "/pause")
}

// Resume continues a paused, failed or auth-blocked run from its checkpoints.
func (c *Client) Resume(ctx context.Context, id string) (*runstore.Run, error) {
	return c.run(ctx, http.MethodPost, id, "/resume")
}

// Cancel ends a run for good.
func (c *Client) Cancel(ctx context.Context, id string) (*runstore.Run, error) {
	return c.run(ctx, http.MethodPost, id, "/cancel")
}

// RetryRejected starts a run that sends an ended run's rejected records again, and
// returns that new run.
func (c *Client) RetryRejected(ctx context.Context, id string) (*runstore.Run, error) {
	return c.run(ctx, http.MethodPost, id, "/retry-rejected")
}

func (c *Client) run(ctx context.Context, method, id, action string) (*runstore.Run, error) {
	var run runstore.Run
	if err := c.do(ctx, method, runPath(id)+action, nil, nil, &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// Events returns a run's most recent events, oldest first; limit 0 takes the server's
// default.
func (c *Client) Events(ctx context.Context, id string, limit int) ([]runstore.Event, error) {
	var list httpapi.EventList
	err := c.do(ctx, http.MethodGet, runPath(id)+"/events"+query("limit", limit), nil, nil, &list)
	return list.Events, err
}

// Rejected returns a page of a run's rejected records with the ledger's total; limit 0
// takes the server's default.
func (c *Client) Rejected(ctx context.Context, id string, offset, limit int) (*httpapi.RejectedPage, error) {
	var page httpapi.RejectedPage
	q := url.Values{}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := runPath(id) + "/rejected"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Samples returns the mapped rows a dry run kept to show.
func (c *Client) Samples(ctx context.Context, id string) ([]runstore.Sample, error) {
	var list httpapi.SampleList
	err := c.do(ctx, http.MethodGet, runPath(id)+"/samples", nil, nil, &list)
	return list.Samples, err
}

// Doctor returns the report on the connections and the mapping for the saved settings.
func (c *Client) Doctor(ctx context.Context) (*doctor.Report, error) {
	var r doctor.Report
	if err := c.do(ctx, http.MethodGet, "/v1/doctor", nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// MappingSuggestion returns the mapping fitted to the org, with every difference for review.
func (c *Client) MappingSuggestion(ctx context.Context) (*mapping.Suggestion, error) {
	var s mapping.Suggestion
	if err := c.do(ctx, http.MethodGet, "/v1/mapping/suggestion", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Settings returns the saved settings, or the defaults.
func (c *Client) Settings(ctx context.Context) (settings.Settings, error) {
	var st settings.Settings
	err := c.do(ctx, http.MethodGet, "/v1/settings", nil, nil, &st)
	return st, err
}

// PutSettings replaces the settings and returns them as saved. Invalid settings get an
// *httpapi.Error whose Fields name every problem; nothing is saved then.
func (c *Client) PutSettings(ctx context.Context, s settings.Settings) (settings.Settings, error) {
	var saved settings.Settings
	err := c.do(ctx, http.MethodPut, "/v1/settings", nil, s, &saved)
	return saved, err
}

// Connection returns the Salesforce connection's status.
func (c *Client) Connection(ctx context.Context) (connection.Status, error) {
	var st connection.Status
	err := c.do(ctx, http.MethodGet, "/v1/connection", nil, nil, &st)
	return st, err
}

// Disconnect revokes the Salesforce grant and returns the status after it.
func (c *Client) Disconnect(ctx context.Context) (connection.Status, error) {
	var st connection.Status
	err := c.do(ctx, http.MethodDelete, "/v1/connection", nil, nil, &st)
	return st, err
}

// ConnectionEvents returns the Salesforce connection's activity log (connected, refreshed,
// needs_reauth...), newest first; limit 0 takes the server's default.
func (c *Client) ConnectionEvents(ctx context.Context, limit int) ([]connection.Event, error) {
	var list httpapi.ConnectionEventList
	err := c.do(ctx, http.MethodGet, "/v1/connection/events"+query("limit", limit), nil, nil, &list)
	return list.Events, err
}

// Ready reports whether the server is up and reaches Redis.
func (c *Client) Ready(ctx context.Context) error {
	var h httpapi.Health
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, &h)
}

// watchFailures is how many polls in a row Watch lets fail for reasons that pass (the API
// restarting in a deploy, a proxy's 502) before it gives up.
const watchFailures = 5

// Watch polls a run every interval, calling fn with each state read, until the run reaches
// a terminal state or ctx ends, and returns the last state read. Transient failures are
// ridden out a few times in a row; an error answer such as 404 ends the watch at once.
func (c *Client) Watch(ctx context.Context, id string, interval time.Duration, fn func(*runstore.Run)) (*runstore.Run, error) {
	if interval <= 0 {
		interval = time.Second
	}
	var last *runstore.Run
	failures := 0
	for {
		run, err := c.Get(ctx, id)
		switch {
		case err == nil:
			failures, last = 0, run
			if fn != nil {
				fn(run)
			}
			if run.State.Terminal() {
				return run, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		case transient(err) && failures < watchFailures:
			failures++
		default:
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func transient(err error) bool {
	var ae *httpapi.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	return true
}

func runPath(id string) string { return "/v1/backfills/" + url.PathEscape(id) }

func query(name string, n int) string {
	if n <= 0 {
		return ""
	}
	return "?" + name + "=" + strconv.Itoa(n)
}

// do sends one request and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// answerError reads an error answer; one that is not the API's JSON (a proxy's HTML page)
// still becomes an *httpapi.Error, without a code.
func answerError(resp *http.Response, raw []byte) *httpapi.Error {
	var b httpapi.ErrorBody
	if err := json.Unmarshal(raw, &b); err == nil && b.Error != nil {
		b.Error.Status, b.Error.ActiveRunID = resp.StatusCode, b.ActiveRunID
		return b.Error
	}
	snippet := strings.TrimSpace(string(raw))
	if len(snippet) > 200 {
		snippet = snippet[:200] + "…"
	}
	return &httpapi.Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s answered %s: %s",
		resp.Request.Method, resp.Request.URL.Path, resp.Status, snippet)}
}
