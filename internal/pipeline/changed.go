package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// streamChanged writes the changed learners a snapshot pass listed.
const streamChanged = "changed"

// catchupPasses is how many detect-and-write passes a catch-up makes: the second finds what
// changed while the first was writing, so a catch-up that ends after a quiet moment is exact.
const catchupPasses = 2

// changedPage is how many changed learners a changed stream takes at a time.
const changedPage = 1000

// changedStream writes the learners a snapshot pass found changed, in pages of the changed
// list, with the learners stream's machinery: students, then progress fetched while earlier
// batches are written. Rows whose content did not change are skipped by hash. Its cursor is
// the offset in the changed list.
type changedStream struct {
	s   *slice
	i   int
	def runstore.StreamDef
	cp  learnerCursor
}

// planChanged makes a catch-up's passes: pass 1 writes what changed since the watermark
// (its snapshot comes first, planSnapshot), each later pass takes a new snapshot and writes
// what changed during the pass before.
func planChanged(_ context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.learners() || !p.catchup() {
		return nil, nil
	}
	var defs []runstore.StreamDef
	for pass := 1; pass <= catchupPasses; pass++ {
		if pass > 1 {
			defs = append(defs, snapshotDef(pass))
		}
		defs = append(defs, runstore.StreamDef{Name: fmt.Sprintf("%s:%d", streamChanged, pass), Kind: streamChanged, Pass: pass})
	}
	return defs, nil
}

func openChanged(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[learnerCursor](s, i)
	return &changedStream{s: s, i: i, def: s.run.Streams[i].StreamDef, cp: cp}, err
}

func (c *changedStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s := c.s
	offset, _ := strconv.Atoi(c.cp.Cursor)
	items, total, err := s.e.Store.ChangedPage(ctx, s.run.ID, c.def.Pass, offset, changedPage)
	if err != nil {
		return nil, "", err
	}
	if len(items) == 0 {
		return &runstore.Commit{Checkpoint: c.cp, StreamDone: true}, runstore.Running, nil
	}
	lp := s.newLearnerPage(c.i, len(items))
	for j, raw := range items {
		var cl changedLearner
		if err := json.Unmarshal([]byte(raw), &cl); err != nil {
			return nil, "", fmt.Errorf("decode changed learner: %w", err)
		}
		lp.ids[j], lp.students[j] = cl.User.ID, mapping.StudentSourceFromUser(cl.User)
	}
	// A pass lists each learner once, and a learner changed again since an earlier pass
	// must be written again: only learners outside the run's domains are passed over.
	lp.seen, lp.outside = make([]bool, len(items)), make([]bool, len(items))
	if len(s.run.Scope.Domains) > 0 {
		member, err := s.e.Store.Members(ctx, s.run.ID, lp.ids)
		if err != nil {
			return nil, "", err
		}
		for j := range lp.outside {
			lp.outside[j] = !member[j]
		}
	}
	state, err := lp.write(ctx, &c.cp)
	if err != nil || state != runstore.Running || c.cp.Index < len(lp.ids) {
		return nil, state, err
	}
	offset += len(items)
	c.cp = learnerCursor{Cursor: strconv.Itoa(offset), Pages: c.cp.Pages + 1}
	return &runstore.Commit{Checkpoint: c.cp, StreamDone: int64(offset) >= total}, state, nil
}
