package salesforce

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels the engine branches on. Every error the client returns is classified here once;
// callers use errors.Is and never look at status codes.
var (
	// ErrAuth means the grant is unusable: a 401 persisted after one refresh, or the token
	// source could not refresh. The engine pauses the run until someone re-authenticates.
	ErrAuth = errors.New("salesforce: authentication failed")

	// ErrLimitExceeded means the org's daily API allocation is spent (403
	// REQUEST_LIMIT_EXCEEDED). Retrying only burns more of it; wait for the rolling window.
	ErrLimitExceeded = errors.New("salesforce: daily API request limit exceeded")

	// ErrBudgetExhausted is our own guard: the org's usage crossed Config.MaxUsageFraction,
	// so the client refuses to start new work and leaves the rest for the org's other users.
	ErrBudgetExhausted = errors.New("salesforce: API budget share exhausted")

	// ErrUnavailable means a transient failure (5xx, timeout, network, concurrent-request
	// limit) outlasted every retry. Trying again later is safe.
	ErrUnavailable = errors.New("salesforce: unavailable")
)

// APIError is a non-2xx answer from Salesforce. Code is the errorCode of the first error in
// the body when the body was JSON; HTML error pages leave it empty and keep a short excerpt
// in Message.
type APIError struct {
	Method  string
	Path    string
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("salesforce: %s %s: %d %s: %s", e.Method, e.Path, e.Status, code, e.Message)
}

// Is maps the status and code onto the package sentinels, so errors.Is(err, ErrAuth) works
// on a bare *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAuth:
		return e.Status == http.StatusUnauthorized
	case ErrLimitExceeded:
		return e.Status == http.StatusForbidden && e.Code == "REQUEST_LIMIT_EXCEEDED" && !e.concurrencyLimit()
	case ErrUnavailable:
		return e.transient()
	}
	return false
}

// concurrencyLimit tells the long-running-request variant of REQUEST_LIMIT_EXCEEDED
// ("ConcurrentRequests (Concurrent API Requests) Limit exceeded.", reference §4.2; Apex's
// own long-transaction limit reads "ConcurrentPerOrgLongTxn Limit exceeded") from the daily
// one: it clears as soon as other requests finish, so it is worth a backoff and retry.
func (e *APIError) concurrencyLimit() bool {
	return e.Code == "REQUEST_LIMIT_EXCEEDED" && strings.Contains(strings.ToLower(e.Message), "concurrent")
}

func (e *APIError) transient() bool {
	switch e.Status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable:
		return true
	}
	return e.Status == http.StatusForbidden && e.concurrencyLimit()
}

// maxErrorExcerpt bounds how much of a non-JSON error body ends up in an error string.
const maxErrorExcerpt = 200

// newAPIError reads Salesforce's error body: normally a JSON array of
// {"message","errorCode"}, sometimes a single object, and behind a load balancer an HTML page.
func newAPIError(method, path string, status int, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status}
	type item struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	var items []item
	var one item
	switch {
	case json.Unmarshal(body, &items) == nil && len(items) > 0:
		e.Code, e.Message = items[0].ErrorCode, items[0].Message
	case json.Unmarshal(body, &one) == nil && (one.ErrorCode != "" || one.Message != ""):
		e.Code, e.Message = one.ErrorCode, one.Message
	default:
		e.Message = excerpt(body)
	}
	return e
}

// excerpt collapses an unexpected body (typically an HTML 503 page) into one short line.
func excerpt(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > maxErrorExcerpt {
		s = strings.ToValidUTF8(s[:maxErrorExcerpt], "") + "…"
	}
	return s
}
