package pipeline

import (
	"context"
	"fmt"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// streamLearners walks a domain's learners: their student rows, then their course progress.
const streamLearners = "learners"

// learnersStream walks a domain's learners page by page. On each page the students are
// written first, then each learner's progress, which is fetched concurrently through the
// shared rate limiter while a writer upserts the batches already complete: the Skilljar
// budget, the long pole, is never idle while Salesforce works.
type learnersStream struct {
	s      *slice
	i      int
	domain string
	cp     learnerCursor
}

// planLearners walks every domain of a backfill that writes learners, and counts them for
// the run's progress. A catch-up finds its learners by change instead (planChanged).
func planLearners(ctx context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.learners() || p.catchup() {
		return nil, nil
	}
	for _, d := range p.domains {
		n, err := p.e.Source.DomainUserCount(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("count learners of %s: %w", d, err)
		}
		p.total += n
	}
	return p.perDomain(streamLearners), nil
}

func openLearners(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[learnerCursor](s, i)
	return &learnersStream{s: s, i: i, domain: s.run.Streams[i].Domain, cp: cp}, err
}

func (l *learnersStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s := l.s
	p, err := s.e.Source.DomainUsers(ctx, l.domain, l.cp.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("read learners of %s: %w", l.domain, err)
	}
	lp := s.newLearnerPage(l.i, len(p.Results))
	for j, u := range p.Results {
		lp.ids[j], lp.students[j] = u.User.ID, mapping.StudentSource(u, l.domain)
	}
	if err := lp.recall(ctx, l.domain); err != nil {
		return nil, "", err
	}
	// Positions from an earlier read of the page mean nothing in this one.
	l.cp.Students, l.cp.Index = 0, 0
	state, err := lp.write(ctx, &l.cp)
	if err != nil || state != runstore.Running || l.cp.Index < len(lp.ids) {
		return nil, state, err
	}
	l.cp = learnerCursor{Cursor: p.Next, Pages: l.cp.Pages + 1}
	return &runstore.Commit{Checkpoint: l.cp, StreamDone: p.Next == ""}, state, nil
}
