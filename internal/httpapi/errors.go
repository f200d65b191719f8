package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Error codes: the "code" of an error answer. Clients branch on these, never on messages.
const (
	CodeUnauthorized        = "unauthorized"           // 401: token missing or wrong
	CodeCrossOrigin         = "cross_origin"           // 403: a browser request from another site
	CodeNotFound            = "not_found"              // 404: no such route or run
	CodeMethodNotAllowed    = "method_not_allowed"     // 405: see the Allow header
	CodeBodyTooLarge        = "body_too_large"         // 413
	CodeUnsupportedMedia    = "unsupported_media_type" // 415: the body must be application/json
	CodeInvalidJSON         = "invalid_json"           // 400: not one well-formed JSON object
	CodeUnknownField        = "unknown_field"          // 400: a field the body does not take
	CodeInvalidType         = "invalid_type"           // 400: a field of the wrong JSON type
	CodeInvalidID           = "invalid_id"             // 400: not the shape of a run id
	CodeInvalidValue        = "invalid_value"          // 400: a value that names nothing known
	CodeInvalidSettings     = "invalid_settings"       // 400: every problem is in "fields"
	CodeRunActive           = "run_active"             // 409: a run of the same scope is active
	CodeInvalidState        = "invalid_state"          // 409: the run's state does not allow it
	CodeUpstreamUnavailable = "upstream_unavailable"   // 502: Skilljar could not check the domains
	CodeNotConfigured       = "not_configured"         // 503: the server lacks what the route needs
	CodeNotReady            = "not_ready"              // 503: Redis does not answer
	CodeInternal            = "internal"               // 500: see the server log
)

// Error is an error answer of the API: its HTTP status and the body's "error" object.
// Handlers return it, and the Go client returns it for every error answer.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the request input at fault: a body field, a query parameter, "id" for the
	// path's run id, or a header name. Empty when no one input is.
	Field string `json:"field"`
	// Fields lists every problem when there are several (invalid settings).
	Fields []settings.FieldError `json:"fields,omitempty"`
	// ActiveRunID is the run that holds the scope, with CodeRunActive; the body carries it
	// beside "error" as "active_run_id".
	ActiveRunID string `json:"-"`

	allow []string // the Allow header of a 405
	cause error    // logged, never sent
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.cause }

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error       *Error `json:"error"`
	ActiveRunID string `json:"active_run_id,omitempty"`
}

func methodNotAllowed(method string, allowed []string) *Error {
	return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, allow: allowed,
		Message: fmt.Sprintf("%s is not allowed here; use %s", method, strings.Join(allowed, " or "))}
}

func invalidValue(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidValue, Field: field, Message: fmt.Sprintf(format, args...)}
}

// classify maps any error a handler returns to its answer, in this one place.
func classify(err error) *Error {
	var (
		ae *Error
		pv *pipeline.ValidationError
		sv *settings.ValidationError
		ce *runstore.ConflictError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pv):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidValue, Field: pv.Field, Message: pv.Message, cause: err}
	case errors.As(err, &sv):
		first := sv.Problems[0]
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidSettings, Field: first.Field,
			Message: "the settings were not saved: " + sv.Error(), Fields: sv.Problems, cause: err}
	case errors.As(err, &ce):
		return &Error{Status: http.StatusConflict, Code: CodeRunActive, ActiveRunID: ce.ActiveID, cause: err,
			Message: fmt.Sprintf("run %s with the same scope is still active; watch it, or pause or cancel it first", ce.ActiveID)}
	case errors.Is(err, runstore.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Field: "id", Message: "no such run", cause: err}
	case errors.Is(err, runstore.ErrBadTransition):
		return &Error{Status: http.StatusConflict, Code: CodeInvalidState, Message: err.Error(), cause: err}
	case isSkilljarFailure(err):
		return &Error{Status: http.StatusBadGateway, Code: CodeUpstreamUnavailable, cause: err,
			Message: "Skilljar could not be asked to check the domains; try again shortly: " + err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", cause: err}
}

// isSkilljarFailure reports an error from the only Skilljar call the API makes: listing the
// domains to validate a request. Redis errors are never *url.Error.
func isSkilljarFailure(err error) bool {
	var (
		api *skilljar.APIError
		rl  *skilljar.RateLimitedError
		mp  *skilljar.MalformedPageError
		ue  *url.Error
	)
	return errors.As(err, &api) || errors.As(err, &rl) || errors.As(err, &mp) || errors.As(err, &ue)
}

// fail answers an error and hands its cause to the request log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if info := requestInfoFrom(r.Context()); info != nil {
		info.err, info.code = err, e.Code
		if e.Status >= 500 && e.Code == CodeInternal {
			e = &Error{Status: e.Status, Code: e.Code, Field: e.Field, cause: e.cause,
				Message: "internal error; the server log has the cause under request id " + info.id}
		}
	}
	if len(e.allow) > 0 {
		w.Header().Set("Allow", strings.Join(e.allow, ", "))
	}
	writeJSON(w, e.Status, ErrorBody{Error: e, ActiveRunID: e.ActiveRunID})
}
