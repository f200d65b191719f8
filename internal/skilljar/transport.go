package skilljar

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/upstream"
)

// get fetches target and hands a 2xx body to decode (nil accepts any body). It waits on the
// limiter before every attempt, retries transient failures with backoff, and sits out 429s.
func (c *Client) get(ctx context.Context, endpoint, target string, decode func([]byte) error) error {
	var failures, limited int
	for {
		if err := c.wait(ctx); err != nil {
			return err
		}
		status, header, body, err := c.attempt(ctx, endpoint, target)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("skilljar: GET %s: %w", target, ctxErr)
		}
		switch {
		case err != nil:
			// Timeouts, refused or reset connections, bodies cut off mid-stream.
		case status == http.StatusTooManyRequests:
			limited++
			retryAfter := parseRetryAfter(header.Get("Retry-After"), time.Now())
			if limited > c.cfg.MaxRateLimited {
				return failed(&RateLimitedError{URL: target, Responses: limited, RetryAfter: retryAfter})
			}
			if err := c.sitOut(ctx, cmp.Or(retryAfter, c.backoff(limited))); err != nil {
				return fmt.Errorf("skilljar: GET %s: %w", target, err)
			}
			continue
		case status >= 200 && status < 300:
			if decode == nil {
				return nil
			}
			if err = decode(body); err == nil {
				return nil
			}
			err = &MalformedPageError{URL: target, Err: err}
		case status >= 500:
			err = c.apiError(target, status, body)
		default:
			return failed(c.apiError(target, status, body))
		}
		failures++
		if failures > max(c.cfg.MaxRetries, 0) {
			if failures > 1 {
				return failed(fmt.Errorf("skilljar: giving up after %d attempts: %w", failures, err))
			}
			return failed(err)
		}
		if err := clock.Sleep(ctx, c.backoff(failures)); err != nil {
			return fmt.Errorf("skilljar: GET %s: %w", target, err)
		}
	}
}

// failed marks a failure of Skilljar's, as opposed to the caller's own.
func failed(err error) error { return &upstream.Error{Service: upstream.Skilljar, Err: err} }

func (c *Client) wait(ctx context.Context) error {
	if c.cfg.Limiter == nil {
		return nil
	}
	waited, err := c.cfg.Limiter.Wait(ctx)
	if c.cfg.Observer != nil {
		c.cfg.Observer.Waited(waited)
	}
	if err != nil {
		return fmt.Errorf("skilljar: rate limiter: %w", err)
	}
	return nil
}

// attempt makes one request. A non-nil error means no usable answer arrived: the request
// failed, timed out, or its body broke off.
func (c *Client) attempt(ctx context.Context, endpoint, target string) (int, http.Header, []byte, error) {
	return c.attemptWith(ctx, http.MethodGet, endpoint, target, nil)
}

// attemptWith is attempt for any method, with an optional JSON body.
func (c *Client) attemptWith(ctx context.Context, method, endpoint, target string, payload []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	status := 0
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer.Call(endpoint, status, time.Since(start))
		}
	}()

	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reqBody)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("skilljar: build request for %s: %w", target, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.cfg.APIKey, "")
	req.Header.Set("Accept", "application/json")
	// The attempt's own deadline is reported without wrapping context.DeadlineExceeded, so
	// callers never mistake a slow server for the end of their own deadline.
	timedOut := fmt.Errorf("skilljar: %s %s: no complete answer within %s", method, target, c.cfg.RequestTimeout)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, timedOut
		}
		return 0, nil, nil, fmt.Errorf("skilljar: %s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return status, nil, nil, timedOut
	case err != nil:
		// Treated as a malformed page: the body arrived, but not whole.
		return status, resp.Header, nil, &MalformedPageError{URL: target, Err: fmt.Errorf("read body: %w", err)}
	case len(body) > maxBody:
		return status, resp.Header, nil, &MalformedPageError{URL: target, Err: fmt.Errorf("body larger than %d bytes", maxBody)}
	}
	return status, resp.Header, body, nil
}

func (c *Client) apiError(target string, status int, body []byte) *APIError {
	// A server or proxy that echoes the request must not leak the key into logs.
	d := strings.ReplaceAll(detail(body), c.cfg.APIKey, "[redacted]")
	return &APIError{Method: http.MethodGet, URL: target, Status: status, Detail: d}
}

// detail extracts DRF's {"detail": "..."} message, or the first line of a short text body.
// HTML error pages from a proxy say nothing the status does not.
func detail(body []byte) string {
	var v struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &v) == nil && v.Detail != "" {
		return v.Detail
	}
	s := strings.TrimSpace(string(body))
	if s == "" || s[0] == '<' || s[0] == '{' || s[0] == '[' {
		return ""
	}
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// sitOut honours a 429: every process sharing the limiter is paused, and this caller sleeps
// out the delay itself in case the limiter cannot be reached.
func (c *Client) sitOut(ctx context.Context, d time.Duration) error {
	if c.cfg.Limiter != nil {
		// An unreachable limiter must not turn a 429 into a failed call; the sleep below
		// still keeps this caller off the API.
		_ = c.cfg.Limiter.PauseUntil(ctx, time.Now().Add(d))
	}
	return clock.Sleep(ctx, d)
}

// backoff is "full jitter" exponential backoff for the nth consecutive failure.
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.cfg.RetryMaxDelay
	if n < 30 {
		ceiling = min(ceiling, c.cfg.RetryBaseDelay<<(n-1))
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 means the header named no delay.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return min(time.Duration(secs*float64(time.Second)), time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}
