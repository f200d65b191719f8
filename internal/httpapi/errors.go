package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sjbackfill/backfill/internal/errclass"
	"github.com/sjbackfill/backfill/internal/settings"
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
	CodeBlocked             = "blocked"                // 422: the doctor found problems; every one is in "fields"
	CodeInvalidState        = "invalid_state"          // 409: the run's state does not allow it
	CodeUpstreamUnavailable = "upstream_unavailable"   // 502: Skilljar or Salesforce failed the call
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

// classify maps any error a handler returns to its answer: its own *Error as it is, anything
// else by its errclass kind.
func classify(err error) *Error {
	if ae, ok := errors.AsType[*Error](err); ok {
		return ae
	}
	c := errclass.Classify(err)
	e := &Error{Status: c.Status, Field: c.Field, cause: err}
	switch c.Kind {
	case errclass.InvalidValue:
		e.Code, e.Message = CodeInvalidValue, c.Detail
	case errclass.InvalidSettings:
		e.Code, e.Message, e.Fields = CodeInvalidSettings, "the settings were not saved: "+c.Detail, c.Problems
	case errclass.RunActive:
		e.Code, e.ActiveRunID = CodeRunActive, c.ActiveRunID
		e.Message = fmt.Sprintf("run %s with the same scope is still active; watch it, or pause or cancel it first", c.ActiveRunID)
	case errclass.NotFound:
		e.Code, e.Message = CodeNotFound, c.Detail
	case errclass.InvalidState:
		e.Code, e.Message = CodeInvalidState, c.Detail
	case errclass.Blocked:
		e.Code, e.Message, e.Fields = CodeBlocked, c.Detail, c.Problems
	case errclass.Upstream:
		e.Code, e.Message = CodeUpstreamUnavailable, c.Service+" could not be asked; try again shortly: "+c.Detail
	default:
		e.Code, e.Message = CodeInternal, "internal error"
	}
	return e
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
