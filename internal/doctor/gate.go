package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// BlockedError refuses a run the doctor found blocked; nothing was queued.
type BlockedError struct{ Problems []Entry }

func (e *BlockedError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		s := p.Message
		if p.Field != "" {
			s = p.Field + ": " + s
		}
		if p.Fix != "" {
			s += " (fix: " + p.Fix + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("the run was not started: %d problem(s) would fail it: %s", len(e.Problems), strings.Join(parts, "; "))
}

// Gated is an engine whose Start first asks the doctor, so the API, the page and the CLI all
// refuse a run that would fail later.
type Gated struct {
	*pipeline.Engine
	Doctor *Doctor
}

// Start refuses a run while the Skilljar key, a domain or the mapping blocks it. A missing
// grant, a spent API budget or a service that did not answer does not refuse it: a queued
// run waits those out (waiting_for_auth, the limit backoff, retries) and resumes by itself.
func (g Gated) Start(ctx context.Context, req pipeline.StartRequest) (*runstore.Run, bool, error) {
	if req.Kind == "" || req.Kind == runstore.KindBackfill {
		r, err := g.Doctor.Check(ctx, req.Scope)
		if err != nil {
			return nil, false, err
		}
		var refused []Entry
		for _, e := range r.Entries {
			if e.Status == Blocking && !e.passing {
				refused = append(refused, e)
			}
		}
		if len(refused) > 0 {
			return nil, false, &BlockedError{Problems: refused}
		}
	}
	return g.Engine.Start(ctx, req)
}
