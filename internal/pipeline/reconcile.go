package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// finish reconciles the run against Salesforce and marks it succeeded.
func (s *slice) finish(ctx context.Context) error {
	run, err := s.e.Store.Get(ctx, s.run.ID)
	if err != nil {
		return err
	}
	sm, err := s.reconcile(ctx, run)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if hasSnapshot(run) && sm.Verdict != "mismatch" {
		// Only now may the next catch-up start from what this run saw.
		if err := s.e.Store.PromoteSnapshot(ctx, run); err != nil {
			return err
		}
	}
	if err := s.e.Store.SetSummary(ctx, run.ID, sm); err != nil {
		return err
	}
	level := "info"
	if sm.Verdict == "mismatch" {
		level = "warn"
	}
	_, _, err = s.e.Store.Transition(ctx, run.ID, runstore.Transition{
		From: []runstore.State{runstore.Running}, To: runstore.Succeeded, Fence: s.fence,
		Event: &runstore.Event{Level: level, Kind: "finished", Message: sm.Message, Data: map[string]any{"verdict": sm.Verdict}},
	})
	if err != nil {
		return err
	}
	s.logger().Info().Str("verdict", sm.Verdict).Msg(sm.Message)
	return nil
}

// reconcile compares, per object, what the run read with what it wrote, and with how many
// records Salesforce holds.
func (s *slice) reconcile(ctx context.Context, run *runstore.Run) (runstore.Summary, error) {
	sm := runstore.Summary{Verdict: "exact"}
	var problems, extra []string
	for _, name := range run.Plan.Objects {
		o, _ := s.e.Mapping.Object(name)
		c := run.Counters[name]
		os := runstore.ObjectSummary{Object: name, SObject: o.SObject, Counters: c,
			Distinct: c.Written + c.Unchanged, SalesforceCount: -1}
		if !run.Scope.DryRun {
			n, err := s.e.Sink.Count(ctx, fmt.Sprintf("SELECT COUNT() FROM %s WHERE %s != null", o.SObject, o.ExternalID))
			if err != nil {
				return sm, fmt.Errorf("count %s: %w", o.SObject, err)
			}
			os.SalesforceCount = int64(n)
		}
		switch {
		case !c.Balanced():
			problems = append(problems, fmt.Sprintf("%s counters do not add up (read %d ≠ written %d + skipped %d + rejected %d + filtered %d)",
				name, c.Read, c.Written, c.Skipped, c.Rejected, c.Filtered))
		case c.Rejected > 0:
			problems = append(problems, fmt.Sprintf("%s: %d rejected (see the ledger)", name, c.Rejected))
		case run.Scope.DryRun:
		case run.Kind == runstore.KindCatchup || run.Kind == runstore.KindRedrive:
			// These write a part of the records: Salesforce holding more is expected.
			os.Matches = os.SalesforceCount >= os.Distinct
			if !os.Matches {
				problems = append(problems, fmt.Sprintf("%s: Salesforce holds %d records but the run accepted %d", name, os.SalesforceCount, os.Distinct))
			}
		case os.SalesforceCount < os.Distinct:
			problems = append(problems, fmt.Sprintf("%s: Salesforce holds %d records but the run accepted %d", name, os.SalesforceCount, os.Distinct))
		case os.SalesforceCount > os.Distinct:
			extra = append(extra, fmt.Sprintf("%s +%d", name, os.SalesforceCount-os.Distinct))
			os.Matches = true
		default:
			os.Matches = true
		}
		sm.Objects = append(sm.Objects, os)
	}
	switch {
	case len(problems) > 0:
		sm.Verdict = "mismatch"
		sm.Message = "Salesforce does not match the source: " + strings.Join(problems, "; ")
	case run.Scope.DryRun:
		sm.Verdict = "dry_run"
		sm.Message = "dry run finished: every record was read and mapped, nothing was written"
	case run.Kind == runstore.KindCatchup || run.Kind == runstore.KindRedrive:
		t := run.Total()
		sm.Verdict = "complete"
		sm.Message = fmt.Sprintf("%s finished: %d records written, %d unchanged and skipped, nothing rejected", run.Kind, t.Written, t.Unchanged)
	case len(extra) > 0:
		sm.Verdict = "complete"
		sm.Message = "every source record is in Salesforce; Salesforce also holds records this run did not write (" +
			strings.Join(extra, ", ") + "): earlier runs, other domains or the live integration"
	default:
		sm.Message = "Salesforce matches the source exactly: every record read is in Salesforce, nothing rejected"
	}
	return sm, nil
}

// hasSnapshot reports whether the run recorded learners' fingerprints for a watermark.
func hasSnapshot(run *runstore.Run) bool {
	if run.Scope.DryRun || run.Plan == nil {
		return false
	}
	for _, st := range run.Plan.Streams {
		if st.Kind == streamSnapshot {
			return true
		}
	}
	return false
}
