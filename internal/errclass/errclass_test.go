package errclass_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/sjbackfill/backfill/internal/errclass"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/upstream"
)

func TestEachKnownErrorGetsItsKindAndStatusEvenWhenWrapped(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		err    error
		kind   errclass.Kind
		status int
	}{
		{"unknown domain", &pipeline.ValidationError{Field: "domains", Message: "no such domain"}, errclass.InvalidValue, http.StatusBadRequest},
		{"invalid settings", &settings.ValidationError{Problems: []settings.FieldError{{Field: "objects", Message: "unknown"}}}, errclass.InvalidSettings, http.StatusBadRequest},
		{"active scope", &runstore.ConflictError{ActiveID: "r20250102t150405a1b2c3d4"}, errclass.RunActive, http.StatusConflict},
		{"no such run", runstore.ErrNotFound, errclass.NotFound, http.StatusNotFound},
		{"bad transition", fmt.Errorf("%w: cannot pause a succeeded run", runstore.ErrBadTransition), errclass.InvalidState, http.StatusConflict},
		{"Skilljar down", &upstream.Error{Service: upstream.Skilljar, Err: errors.New("503")}, errclass.Upstream, http.StatusBadGateway},
		{"anything else", errors.New("redis: connection refused"), errclass.Internal, http.StatusInternalServerError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, err := range []error{tc.err, fmt.Errorf("start run: %w", tc.err)} {
				c := errclass.Classify(err)
				if c.Kind != tc.kind || c.Status != tc.status {
					t.Fatalf("%v: kind %d status %d, want kind %d status %d", err, c.Kind, c.Status, tc.kind, tc.status)
				}
				if (c.Detail == "") != (tc.kind == errclass.Internal) {
					t.Fatalf("%v: detail %q; only an internal error has none", err, c.Detail)
				}
			}
		})
	}
}

func TestClassesCarryWhatTheAnswerNames(t *testing.T) {
	t.Parallel()
	if c := errclass.Classify(&runstore.ConflictError{ActiveID: "r1"}); c.ActiveRunID != "r1" {
		t.Fatalf("conflict names active run %q, want r1", c.ActiveRunID)
	}
	if c := errclass.Classify(&pipeline.ValidationError{Field: "objects", Message: "m"}); c.Field != "objects" {
		t.Fatalf("validation names field %q, want objects", c.Field)
	}
	problems := []settings.FieldError{{Field: "a", Message: "x"}, {Field: "b", Message: "y"}}
	if c := errclass.Classify(&settings.ValidationError{Problems: problems}); c.Field != "a" || len(c.Problems) != 2 {
		t.Fatalf("settings class %+v, want field a and both problems", c)
	}
	if c := errclass.Classify(&upstream.Error{Service: upstream.Salesforce, Err: errors.New("x")}); c.Service != upstream.Salesforce {
		t.Fatalf("upstream names service %q", c.Service)
	}
}
