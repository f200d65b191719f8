package pipeline

import (
	"context"
	"fmt"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// streamVerify re-walks a domain's learners after its learners stream to find the members
// that stream never saw: page-number pages of an unordered list shift under a crawl, and
// members join while it runs (reference/skilljar.md §12).
const streamVerify = "verify"

// verifyCursor is the checkpoint of a verification stream: the walk under way, where it
// stands, and what the walks found. The embedded cursor is the page being written.
type verifyCursor struct {
	learnerCursor
	// Walk numbers the walks begun; Walking is set while walk Walk is under way, and Start
	// is how many learners the domain accounted for when it began: the difference at its
	// end is what it found.
	Walk    int   `json:"walk"`
	Walking bool  `json:"walking"`
	Start   int64 `json:"start"`
	// Found counts the learners the finished walks accounted for; Unaccounted the members
	// still missing when the stream ended.
	Found       int64 `json:"found"`
	Unaccounted int64 `json:"unaccounted"`
}

// verifyStream walks a domain's pages with list calls only and processes every member not
// yet accounted for, as the learners stream would; a member it finds done passes with no
// other call. It walks at least once, since members leaving can hide as many joiners from a
// comparison of counts, and again until a walk finds nobody and the domain's accounted
// learners reach its member count, at most Config.VerifyWalks times.
type verifyStream struct {
	s      *slice
	i      int
	domain string
	cp     verifyCursor
}

// planVerify verifies every domain a learners stream walks.
func planVerify(_ context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.learners() || p.catchup() {
		return nil, nil
	}
	return p.perDomain(streamVerify), nil
}

func openVerify(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[verifyCursor](s, i)
	return &verifyStream{s: s, i: i, domain: s.run.Streams[i].Domain, cp: cp}, err
}

func (v *verifyStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s := v.s
	p, err := s.e.Source.DomainUsers(ctx, v.domain, v.cp.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("verify learners of %s: %w", v.domain, err)
	}
	if !v.cp.Walking {
		start, err := s.e.Store.AccountedCount(ctx, s.run.ID, v.domain)
		if err != nil {
			return nil, "", err
		}
		v.cp.Walk, v.cp.Walking, v.cp.Start = v.cp.Walk+1, true, start
	}
	lp := s.newLearnerPage(v.i, len(p.Results))
	for j, u := range p.Results {
		lp.ids[j], lp.students[j] = u.User.ID, mapping.StudentSource(u, v.domain)
	}
	if err := lp.recall(ctx, v.domain); err != nil {
		return nil, "", err
	}
	walk := v.cp
	lp.checkpoint = func(c learnerCursor) any { walk.learnerCursor = c; return walk }
	v.cp.Students, v.cp.Index = 0, 0
	state, err := lp.write(ctx, &v.cp.learnerCursor)
	if err != nil || state != runstore.Running || v.cp.Index < len(lp.ids) {
		return nil, state, err
	}
	v.cp.learnerCursor = learnerCursor{Cursor: p.Next, Pages: v.cp.Pages + 1}
	if p.Next != "" {
		return &runstore.Commit{Checkpoint: v.cp}, state, nil
	}
	// The walk's last page: end, or walk again from the first page.
	accounted, err := s.e.Store.AccountedCount(ctx, s.run.ID, v.domain)
	if err != nil {
		return nil, "", err
	}
	found, members := accounted-v.cp.Start, int64(p.Count)
	v.cp.Found += found
	v.cp.Walking = false
	switch {
	case found == 0 && accounted >= members:
		return v.end(members, accounted, "")
	case v.cp.Walk >= s.e.cfg.VerifyWalks:
		return v.end(members, accounted, fmt.Sprintf("after %d verification walks", v.cp.Walk))
	}
	return &runstore.Commit{Checkpoint: v.cp}, state, nil
}

// end finishes the stream: every member accounted for, or the walks allowed spent (after
// says so), with the members still missing named in the activity log.
func (v *verifyStream) end(members, accounted int64, after string) (*runstore.Commit, runstore.State, error) {
	v.cp.Unaccounted = max(0, members-accounted)
	name := v.s.run.Streams[v.i].Name
	c := &runstore.Commit{Checkpoint: v.cp, StreamDone: true}
	switch {
	case v.cp.Unaccounted > 0:
		c.Events = append(c.Events, runstore.Event{Level: "warn", Kind: "learners_unaccounted", Stream: name,
			Message: fmt.Sprintf("%s: %s of %d still unaccounted for %s; a catch-up or a new backfill picks them up",
				v.domain, pluralize(int(v.cp.Unaccounted), "member"), members, after),
			Data: map[string]any{"domain": v.domain, "unaccounted": v.cp.Unaccounted, "walks": v.cp.Walk}})
	case v.cp.Found > 0:
		c.Events = append(c.Events, runstore.Event{Level: "info", Kind: "learners_found", Stream: name,
			Message: fmt.Sprintf("%s: %s the first walk missed found and processed in %d verification walks",
				v.domain, pluralize(int(v.cp.Found), "learner"), v.cp.Walk),
			Data: map[string]any{"domain": v.domain, "found": v.cp.Found, "walks": v.cp.Walk}})
	}
	return c, runstore.Running, nil
}
