package pipeline

import (
	"context"
	"fmt"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// streamMembers walks an allowed domain's users to learn who belongs to the run's domains.
const streamMembers = "members"

// membersStream records which learners belong to an allowed domain, for a catch-up with a
// domain filter: GET /v1/users does not say.
type membersStream struct {
	s      *slice
	domain string
	cp     listCursor
}

// planMembers is needed only by a catch-up limited to some domains.
func planMembers(_ context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.learners() || !p.catchup() || len(p.run.Scope.Domains) == 0 {
		return nil, nil
	}
	return p.perDomain(streamMembers), nil
}

func openMembers(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[listCursor](s, i)
	return &membersStream{s: s, domain: s.run.Streams[i].Domain, cp: cp}, err
}

func (m *membersStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	p, err := m.s.e.Source.DomainUsers(ctx, m.domain, m.cp.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("read learners of %s: %w", m.domain, err)
	}
	c := &runstore.Commit{StreamDone: p.Next == ""}
	for _, u := range p.Results {
		c.Members = append(c.Members, u.User.ID)
	}
	m.cp = listCursor{Cursor: p.Next, Pages: m.cp.Pages + 1}
	c.Checkpoint = m.cp
	return c, runstore.Running, nil
}
