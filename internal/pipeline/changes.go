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

// Stream kinds of change detection.
const (
	// streamSnapshot walks GET /v1/users and records each learner's fingerprint; in a
	// catch-up it also lists the learners whose fingerprint changed.
	streamSnapshot = "snapshot"
	// streamMembers walks an allowed domain's users to learn who belongs to the run's domains.
	streamMembers = "members"
	// streamChanged writes the changed learners a snapshot pass listed.
	streamChanged = "changed"
)

// catchupPasses is how many detect-and-write passes a catch-up makes: the second finds what
// changed while the first was writing, so a catch-up that ends after a quiet moment is exact.
const catchupPasses = 2

// changedPage is how many changed learners a changed stream takes at a time.
const changedPage = 1000

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
func (s *slice) snapshotStream(ctx context.Context, i int) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp snapshotCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	compare := s.run.Kind == runstore.KindCatchup
	for {
		p, err := s.e.Source.Users(ctx, cp.Cursor)
		if err != nil {
			return "", fmt.Errorf("read learners overview: %w", err)
		}
		c := runstore.Commit{Stream: i, Pass: st.Pass, Snapshot: make(map[string]string, len(p.Results))}
		ids := make([]string, len(p.Results))
		for j, u := range p.Results {
			ids[j] = u.User.ID
			c.Snapshot[u.User.ID] = fingerprint(u)
		}
		if compare {
			before, err := s.e.Store.Fingerprints(ctx, s.run, st.Pass, ids)
			if err != nil {
				return "", err
			}
			for j, u := range p.Results {
				if before[j] != c.Snapshot[u.User.ID] {
					b, _ := json.Marshal(changedLearner{User: u.User})
					c.Changed = append(c.Changed, string(b))
				}
			}
		}
		cp.Changed += len(c.Changed)
		c.ProgressTotal = int64(len(c.Changed))
		c.StreamDone = p.Next == ""
		cp.Cursor, cp.Pages = p.Next, cp.Pages+1
		c.Checkpoint = cp
		if c.StreamDone && compare {
			c.Events = append(c.Events, runstore.Event{Level: "info", Kind: "changes_found", Stream: st.Name,
				Message: fmt.Sprintf("pass %d: %d learners changed since %s", st.Pass, cp.Changed, s.baselineName(st.Pass))})
		}
		state, err := s.commitRaw(ctx, i, c)
		if err != nil || state != runstore.Running || c.StreamDone || s.timeUp() {
			return state, err
		}
	}
}

func (s *slice) baselineName(pass int) string {
	if pass == 1 {
		return "the last successful run"
	}
	return "pass " + strconv.Itoa(pass-1)
}

// membersStream records which learners belong to an allowed domain, for a catch-up with a
// domain filter: GET /v1/users does not say.
func (s *slice) membersStream(ctx context.Context, i int) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp listCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	for {
		p, err := s.e.Source.DomainUsers(ctx, st.Domain, cp.Cursor)
		if err != nil {
			return "", fmt.Errorf("read learners of %s: %w", st.Domain, err)
		}
		c := runstore.Commit{Stream: i}
		for _, u := range p.Results {
			c.Members = append(c.Members, u.User.ID)
		}
		c.StreamDone = p.Next == ""
		cp = listCursor{Cursor: p.Next, Pages: cp.Pages + 1}
		c.Checkpoint = cp
		state, err := s.commitRaw(ctx, i, c)
		if err != nil || state != runstore.Running || c.StreamDone || s.timeUp() {
			return state, err
		}
	}
}

// changedStream writes the learners a snapshot pass found changed, in pages of the changed
// list, with the learners stream's machinery: students, then progress fetched while earlier
// batches are written. Rows whose content did not change are skipped by hash.
func (s *slice) changedStream(ctx context.Context, i int) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp learnerCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	offset, _ := strconv.Atoi(cp.Cursor)
	filtered := s.domainFiltered()
	for {
		items, total, err := s.e.Store.ChangedPage(ctx, s.run.ID, st.Pass, offset, changedPage)
		if err != nil {
			return "", err
		}
		if len(items) == 0 {
			state, err := s.commit(ctx, i, cp, true, nil, nil, 0)
			return state, err
		}
		lp := &learnerPage{ids: make([]string, len(items)), students: make([]mapping.Source, len(items))}
		for j, raw := range items {
			var cl changedLearner
			if err := json.Unmarshal([]byte(raw), &cl); err != nil {
				return "", fmt.Errorf("decode changed learner: %w", err)
			}
			lp.ids[j], lp.students[j] = cl.User.ID, mapping.StudentSourceFromUser(cl.User)
		}
		// A pass lists each learner once, and a learner changed again since an earlier pass
		// must be written again: only learners outside the run's domains are passed over.
		lp.seen, lp.outside = make([]bool, len(items)), make([]bool, len(items))
		if filtered {
			member, err := s.e.Store.Members(ctx, s.run.ID, lp.ids)
			if err != nil {
				return "", err
			}
			for j := range lp.outside {
				lp.outside[j] = !member[j]
			}
		}
		cp.Students = min(cp.Students, len(lp.ids))
		cp.Index = min(cp.Index, cp.Students)
		state, err := s.learnersPage(ctx, i, st.Name, "", &cp, lp)
		if err != nil || state != runstore.Running || cp.Index < len(lp.ids) {
			return state, err
		}
		offset += len(items)
		done := int64(offset) >= total
		cp = learnerCursor{Cursor: strconv.Itoa(offset), Pages: cp.Pages + 1}
		state, err = s.commit(ctx, i, cp, done, nil, nil, 0)
		if err != nil || state != runstore.Running || done || s.timeUp() {
			return state, err
		}
	}
}

// domainFiltered reports whether the run covers only some of the org's domains.
func (s *slice) domainFiltered() bool { return len(s.run.Scope.Domains) > 0 }
