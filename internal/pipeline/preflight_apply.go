package pipeline

import (
	"context"
	"strings"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// adaptRows takes the fields the run's plan omits out of rows about to be written.
func (s *slice) adaptRows(object string, rows []pendingRow) {
	if s.run.Plan == nil {
		return
	}
	var omit []string
	for _, a := range s.run.Plan.Adaptations {
		if a.Kind == runstore.AdaptOmit && a.Object == object {
			omit = append(omit, a.Field)
		}
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

// CreateOnlyFields lists, per sObject, the row keys (field API names, or relationship names
// for parent references) a sink must send when it creates a record and leave out when it
// updates one.
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
