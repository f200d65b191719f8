package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
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

// reconcile compares, per object, what the run read with what it wrote, with how many
// records Salesforce holds and, for a backfill, with how many the source lists now: each
// domain's members against the learners the run accounted for, and the org's courses and
// published courses against Salesforce's.
func (s *slice) reconcile(ctx context.Context, run *runstore.Run) (runstore.Summary, error) {
	sm := runstore.Summary{Verdict: "exact"}
	var problems, extra []string
	whole := run.Kind == runstore.KindBackfill
	if whole {
		domains, err := s.domainSummaries(ctx, run)
		if err != nil {
			return sm, err
		}
		for _, d := range domains {
			sm.FoundByVerification += d.Found
			if d.Accounted < d.Members {
				problems = append(problems, fmt.Sprintf("domain %s: Skilljar lists %d members, the run accounted for %d", d.Domain, d.Members, d.Accounted))
			}
		}
		sm.Domains = domains
	}
	for _, name := range run.Plan.Objects {
		os, err := s.objectSummary(ctx, run, name, whole)
		if err != nil {
			return sm, err
		}
		problem, more := judge(run, &os)
		if problem != "" {
			problems = append(problems, problem)
		}
		if more != "" {
			extra = append(extra, more)
		}
		sm.Objects = append(sm.Objects, os)
	}
	sm.Verdict, sm.Message = verdict(run, problems, extra)
	if sm.FoundByVerification > 0 {
		sm.Message += fmt.Sprintf("; the verification walks found %s the first walk of their domain missed", pluralize(int(sm.FoundByVerification), "learner"))
	}
	return sm, nil
}

// objectSummary counts one object of the run in Skilljar (a whole backfill only) and in
// Salesforce (unless the run wrote nothing); -1 stands for a count not taken.
func (s *slice) objectSummary(ctx context.Context, run *runstore.Run, name string, whole bool) (runstore.ObjectSummary, error) {
	o, _ := s.e.Mapping.Object(name)
	c := run.Counters[name]
	os := runstore.ObjectSummary{Object: name, SObject: o.SObject, Counters: c,
		Distinct: c.Written + c.Unchanged, SalesforceCount: -1, SourceCount: -1}
	if whole {
		n, err := s.sourceCount(ctx, name, run.Plan.Domains)
		if err != nil {
			return os, fmt.Errorf("count %s in Skilljar: %w", name, err)
		}
		os.SourceCount = n
	}
	if !run.Scope.DryRun {
		n, err := s.e.Sink.Count(ctx, fmt.Sprintf("SELECT COUNT() FROM %s WHERE %s != null", o.SObject, o.ExternalID))
		if err != nil {
			return os, fmt.Errorf("count %s: %w", o.SObject, err)
		}
		os.SalesforceCount = int64(n)
	}
	return os, nil
}

// judge sets whether one object's counts match and says what is wrong with them (problem)
// or what Salesforce holds beyond the run (extra), each "" when nothing.
func judge(run *runstore.Run, os *runstore.ObjectSummary) (problem, extra string) {
	name, c := os.Object, os.Counters
	switch {
	case !c.Balanced():
		return fmt.Sprintf("%s counters do not add up (read %d ≠ written %d + skipped %d + rejected %d + filtered %d)",
			name, c.Read, c.Written, c.Skipped, c.Rejected, c.Filtered), ""
	case c.Rejected > 0:
		return fmt.Sprintf("%s: %d rejected (see the ledger)", name, c.Rejected), ""
	case run.Scope.DryRun:
		return "", ""
	case run.Kind == runstore.KindCatchup || run.Kind == runstore.KindRedrive:
		// These write a part of the records: Salesforce holding more is expected.
		os.Matches = os.SalesforceCount >= os.Distinct
		if !os.Matches {
			return fmt.Sprintf("%s: Salesforce holds %d records but the run accepted %d", name, os.SalesforceCount, os.Distinct), ""
		}
		return "", ""
	case os.SalesforceCount < os.Distinct:
		return fmt.Sprintf("%s: Salesforce holds %d records but the run accepted %d", name, os.SalesforceCount, os.Distinct), ""
	case os.SalesforceCount < os.SourceCount:
		return fmt.Sprintf("%s: Salesforce holds %d records but Skilljar lists %d", name, os.SalesforceCount, os.SourceCount), ""
	case os.SalesforceCount > os.Distinct:
		os.Matches = true
		return "", fmt.Sprintf("%s +%d", name, os.SalesforceCount-os.Distinct)
	}
	os.Matches = true
	return "", ""
}

// verdict words the run's outcome from the problems and extras the objects showed.
func verdict(run *runstore.Run, problems, extra []string) (verdict, message string) {
	switch {
	case len(problems) > 0:
		return "mismatch", "Salesforce does not match the source: " + strings.Join(problems, "; ")
	case run.Scope.DryRun:
		return "dry_run", "dry run finished: every record was read and mapped, nothing was written"
	case run.Kind == runstore.KindCatchup || run.Kind == runstore.KindRedrive:
		t := run.Total()
		return "complete", fmt.Sprintf("%s finished: %d records written, %d unchanged and skipped, nothing rejected", run.Kind, t.Written, t.Unchanged)
	case len(extra) > 0:
		return "complete", "every source record is in Salesforce; Salesforce also holds records this run did not write (" +
			strings.Join(extra, ", ") + "): earlier runs, other domains or the live integration"
	}
	return "exact", "Salesforce matches the source exactly: every record read is in Salesforce, nothing rejected"
}

// domainSummaries compares each verified domain's members now with the learners the run
// accounted for there, with what its verification walks found.
func (s *slice) domainSummaries(ctx context.Context, run *runstore.Run) ([]runstore.DomainSummary, error) {
	var out []runstore.DomainSummary
	for i, st := range run.Streams {
		if st.Kind != streamVerify {
			continue
		}
		cp, err := checkpointOf[verifyCursor](s, i)
		if err != nil {
			return nil, err
		}
		d := runstore.DomainSummary{Domain: st.Domain, Found: cp.Found, Unaccounted: cp.Unaccounted}
		if d.Members, err = s.e.Source.DomainUserCount(ctx, st.Domain); err != nil {
			return nil, fmt.Errorf("count learners of %s: %w", st.Domain, err)
		}
		if d.Accounted, err = s.e.Store.AccountedCount(ctx, run.ID, st.Domain); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// sourceCount is how many records of object Skilljar lists now, from the count on the first
// page of its list; -1 for objects listed only per learner.
func (s *slice) sourceCount(ctx context.Context, object string, domains []string) (int64, error) {
	switch object {
	case mapping.Course:
		p, err := s.e.Source.Courses(ctx, "")
		if !p.HasCount {
			return -1, err
		}
		return int64(p.Count), err
	case mapping.PublishedCourse:
		var n int64
		for _, d := range domains {
			p, err := s.e.Source.PublishedCourses(ctx, d, "")
			if err != nil || !p.HasCount {
				return -1, err
			}
			n += int64(p.Count)
		}
		return n, nil
	}
	return -1, nil
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
