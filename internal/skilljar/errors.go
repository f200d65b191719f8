package skilljar

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

var (
	// ErrUnauthorized means the API refused the key (401 or 403).
	ErrUnauthorized = errors.New("skilljar: API key rejected")
	// ErrNotFound means a 404: the record does not exist, or the org does not serve the
	// endpoint (the v1 API answers both the same way).
	ErrNotFound = errors.New("skilljar: not found")
	// ErrInvalidPage is the 404 DRF gives for a page number past the end ("Invalid page.").
	// It wraps ErrNotFound.
	ErrInvalidPage = fmt.Errorf("%w: invalid page", ErrNotFound)
)

// APIError is an HTTP error answer from the API. It wraps ErrUnauthorized, ErrNotFound or
// ErrInvalidPage where those apply.
type APIError struct {
	Method string
	URL    string
	Status int
	// Detail is the API's {"detail": ...} message, or the start of a non-JSON body.
	Detail string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("skilljar: %s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if errors.Is(e, ErrUnauthorized) {
		msg += " (check SKILLJAR_API_KEY: the key goes in the Basic-auth username with an empty password)"
	}
	return msg
}

func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusNotFound:
		if e.Detail == "Invalid page." {
			return ErrInvalidPage
		}
		return ErrNotFound
	}
	return nil
}

// MalformedPageError means a page kept arriving broken (truncated, garbled or not the
// expected JSON shape) after every retry. URL names the page so it can be inspected and the
// run resumed from it.
type MalformedPageError struct {
	URL string
	Err error
}

func (e *MalformedPageError) Error() string {
	return fmt.Sprintf("skilljar: malformed page %s: %v", e.URL, e.Err)
}

func (e *MalformedPageError) Unwrap() error { return e.Err }

// RateLimitedError means a call was answered 429 more often than Config.MaxRateLimited
// allows: the shared budget is set above what the server grants, or another client spends
// the same key.
type RateLimitedError struct {
	URL string
	// Responses is how many 429 answers the call received.
	Responses int
	// RetryAfter is what the last answer asked for, 0 if it named no delay.
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("skilljar: GET %s: still rate limited after %d answers of 429 (last Retry-After %s); "+
		"lower the shared rate limit or stop other clients using the key", e.URL, e.Responses, e.RetryAfter)
}

// ForeignURLError refuses a page URL that is not on the configured API host: following it
// would hand the API key to another server.
type ForeignURLError struct {
	URL  string
	Base string
}

func (e *ForeignURLError) Error() string {
	return fmt.Sprintf("skilljar: refusing to send the API key to %q: only absolute URLs on %s are fetched", e.URL, e.Base)
}
