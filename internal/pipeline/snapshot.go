package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// streamSnapshot walks GET /v1/users and records each learner's fingerprint; in a catch-up
// it also lists the learners whose fingerprint changed.
const streamSnapshot = "snapshot"

// fingerprint is what GET /v1/users says about a learner's activity: a new enrollment, a
// completion or any course visit changes it.
func fingerprint(u skilljar.UserOverview) string {
	fp := strconv.Itoa(u.RegistrationCount) + "|" + strconv.Itoa(u.CompletionCount) + "|"
	if u.LatestActivity != nil {
		fp += u.LatestActivity.UTC().Format(time.RFC3339Nano)
	}
	return fp
}

// snapshotCursor is the checkpoint of a snapshot pass.
type snapshotCursor struct {
	Cursor  string `json:"page_url,omitempty"`
	Pages   int    `json:"pages"`
	Changed int    `json:"changed"`
}

// changedLearner is one entry of a pass's changed list.
type changedLearner struct {
	User skilljar.UserRef `json:"user"`
}

// snapshotStream records every learner's fingerprint before any of their records is read, so
// a change that lands while the run works is seen by the next catch-up. In a catch-up it
// compares with the watermark (pass 1) or the previous pass and lists the changed learners.
type snapshotStream struct {
	s   *slice
	def runstore.StreamDef
	cp  snapshotCursor
}

func snapshotDef(pass int) runstore.StreamDef {
	return runstore.StreamDef{Name: fmt.Sprintf("%s:%d", streamSnapshot, pass), Kind: streamSnapshot, Pass: pass}
}

// planSnapshot takes the first snapshot before any learner is read, so a change landing
// during the run is found by the next catch-up. Only a run that writes progress may set the
// watermark. A catch-up's later passes take theirs before each pass (planChanged).
func planSnapshot(ctx context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.has(mapping.CourseProgress) || p.run.Scope.DryRun {
		return nil, nil
	}
	def := snapshotDef(1)
	if p.catchup() && p.e.Live != nil {
		// Webhook deliveries were lost while a subscription was off: compare everyone.
		full, err := p.e.Live.TakeFullDetection(ctx)
		if err != nil {
			return nil, err
		}
		def.Full = full
	}
	return []runstore.StreamDef{def}, nil
}

func openSnapshot(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[snapshotCursor](s, i)
	return &snapshotStream{s: s, def: s.run.Streams[i].StreamDef, cp: cp}, err
}

func (st *snapshotStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s, pass := st.s, st.def.Pass
	p, err := s.e.Source.Users(ctx, st.cp.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("read learners overview: %w", err)
	}
	c := &runstore.Commit{Pass: pass, Snapshot: make(map[string]string, len(p.Results))}
	ids := make([]string, len(p.Results))
	for j, u := range p.Results {
		ids[j] = u.User.ID
		c.Snapshot[u.User.ID] = fingerprint(u)
	}
	compare := s.run.Kind == runstore.KindCatchup
	if compare {
		before, err := s.e.Store.Fingerprints(ctx, s.run, pass, ids)
		if err != nil {
			return nil, "", err
		}
		if st.def.Full {
			clear(before)
		}
		for j, u := range p.Results {
			if before[j] != c.Snapshot[u.User.ID] {
				b, _ := json.Marshal(changedLearner{User: u.User})
				c.Changed = append(c.Changed, string(b))
			}
		}
	}
	st.cp.Changed += len(c.Changed)
	st.cp.Cursor, st.cp.Pages = p.Next, st.cp.Pages+1
	c.ProgressTotal, c.StreamDone, c.Checkpoint = int64(len(c.Changed)), p.Next == "", st.cp
	if c.StreamDone && compare {
		baseline := "the last successful run"
		if pass > 1 {
			baseline = "pass " + strconv.Itoa(pass-1)
		}
		c.Events = append(c.Events, runstore.Event{Level: "info", Kind: "changes_found", Stream: st.def.Name,
			Message: fmt.Sprintf("pass %d: %d learners changed since %s", pass, st.cp.Changed, baseline)})
	}
	return c, runstore.Running, nil
}
