package pipeline

import (
	"context"
	"strings"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// createOnlySink is a sink that can write fields on insert only: records that already exist
// are updated without them.
type createOnlySink interface {
	SetCreateOnly(sobject string, fields ...string)
}

// adaptRows applies the run's plan to rows about to be written: the fields it omits leave
// the rows, and a sink that can is told the object's create-only fields (every slice tells
// its own worker's sink, the plan being the run's).
func (s *slice) adaptRows(object string, rows []pendingRow) {
	if s.run.Plan == nil {
		return
	}
	var omit, createOnly []string
	sobject := ""
	for _, a := range s.run.Plan.Adaptations {
		switch {
		case a.Object != object:
		case a.Kind == runstore.AdaptOmit:
			omit = append(omit, a.Field)
		case a.Kind == runstore.AdaptCreateOnly:
			createOnly, sobject = append(createOnly, a.Field), a.SObject
		}
	}
	if sink, ok := s.e.Sink.(createOnlySink); ok && len(createOnly) > 0 {
		sink.SetCreateOnly(sobject, createOnly...)
	}
	if len(omit) == 0 {
		return
	}
	for _, r := range rows {
		for k := range r.row {
			for _, f := range omit {
				if strings.EqualFold(k, f) {
					delete(r.row, k)
				}
			}
		}
	}
}

// CreateOnlyFields lists, per sObject, the field API names a sink must send when it creates a
// record and leave out when it updates one (for a lookup, its relationship's reference too).
func CreateOnlyFields(adaptations []runstore.Adaptation) map[string][]string {
	out := map[string][]string{}
	for _, a := range adaptations {
		if a.Kind == runstore.AdaptCreateOnly {
			out[a.SObject] = append(out[a.SObject], a.Field)
		}
	}
	return out
}

// reportAdaptations puts each adaptation in the run's activity log.
func (s *slice) reportAdaptations(ctx context.Context, adaptations []runstore.Adaptation) {
	for _, a := range adaptations {
		level := "info"
		if a.Kind != runstore.AdaptCreateOnly {
			level = "warn"
		}
		s.event(ctx, level, "adapted", a.Message)
	}
}
