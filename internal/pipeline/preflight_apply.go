package pipeline

import (
	"context"
	"slices"
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
	o, _ := s.e.Mapping.Object(object)
	if sink, ok := s.e.Sink.(createOnlySink); ok {
		if fields := CreateOnlyFields(s.run.Plan.Adaptations)[o.SObject]; len(fields) > 0 {
			sink.SetCreateOnly(o.SObject, fields...)
		}
	}
	var omit []string
	for _, a := range s.run.Plan.Adaptations {
		if a.Kind == runstore.AdaptOmit && a.Object == object {
			omit = append(omit, a.Field)
		}
	}
	for _, r := range rows {
		for k := range r.row {
			if slices.ContainsFunc(omit, func(f string) bool { return strings.EqualFold(k, f) }) {
				delete(r.row, k)
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
