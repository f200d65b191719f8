// Package errclass sorts the errors behind HTTP answers into kinds, each with its status, so
// the JSON API and the settings page answer every failure alike.
package errclass

import (
	"errors"
	"net/http"

	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/upstream"
)

// Kind is what went wrong, as far as an answer cares.
type Kind int

// The kinds, in the order Classify tests them.
const (
	// Internal is the server's own failure: its cause belongs in the log, never in the answer.
	Internal Kind = iota
	// InvalidValue is a request value that names nothing known (an unknown domain or object).
	InvalidValue
	// InvalidSettings is a settings change with one or more problems, all in Problems.
	InvalidSettings
	// RunActive is a new run refused because a run of the same scope is active.
	RunActive
	// NotFound is a run that does not exist.
	NotFound
	// InvalidState is an action the run's state does not allow.
	InvalidState
	// Upstream is a failure of Skilljar or Salesforce, named in Service.
	Upstream
	// Blocked is a run refused because the doctor found problems that would fail it, all in
	// Problems.
	Blocked
)

// Class is what an answer needs to know about an error.
type Class struct {
	Kind   Kind
	Status int
	// Field names the request input at fault, when one is.
	Field string
	// Detail says what was wrong in the words of the package that refused; fit to show,
	// and empty for Internal.
	Detail string
	// ActiveRunID is the run holding the scope, for RunActive.
	ActiveRunID string
	// Problems lists every settings problem, for InvalidSettings, and every blocking
	// problem with its fix, for Blocked.
	Problems []settings.FieldError
	// Service is the failed service, for Upstream.
	Service string
}

// Classify sorts err. Errors it does not know are Internal.
func Classify(err error) Class {
	var (
		pv *pipeline.ValidationError
		sv *settings.ValidationError
		ce *runstore.ConflictError
		ue *upstream.Error
		be *doctor.BlockedError
	)
	switch {
	case errors.As(err, &be):
		c := Class{Kind: Blocked, Status: http.StatusUnprocessableEntity, Detail: be.Error()}
		for _, p := range be.Problems {
			c.Problems = append(c.Problems, settings.FieldError{Field: p.Field, Message: p.Message + "; fix: " + p.Fix})
		}
		c.Field = c.Problems[0].Field
		return c
	case errors.As(err, &pv):
		return Class{Kind: InvalidValue, Status: http.StatusBadRequest, Field: pv.Field, Detail: pv.Message}
	case errors.As(err, &sv) && len(sv.Problems) > 0:
		return Class{Kind: InvalidSettings, Status: http.StatusBadRequest, Field: sv.Problems[0].Field,
			Detail: sv.Error(), Problems: sv.Problems}
	case errors.As(err, &ce):
		return Class{Kind: RunActive, Status: http.StatusConflict, ActiveRunID: ce.ActiveID, Detail: ce.Error()}
	case errors.Is(err, runstore.ErrNotFound):
		return Class{Kind: NotFound, Status: http.StatusNotFound, Field: "id", Detail: "no such run"}
	case errors.Is(err, runstore.ErrBadTransition):
		return Class{Kind: InvalidState, Status: http.StatusConflict, Detail: err.Error()}
	case errors.As(err, &ue):
		return Class{Kind: Upstream, Status: http.StatusBadGateway, Service: ue.Service, Detail: ue.Error()}
	}
	return Class{Kind: Internal, Status: http.StatusInternalServerError}
}
