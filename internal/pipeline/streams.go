package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// listCursor is the checkpoint of a stream over a plain list: the page being read and how
// many of its rows Salesforce has accepted.
type listCursor struct {
	PageURL string `json:"page_url,omitempty"`
	Index   int    `json:"index"`
	Pages   int    `json:"pages"`
}

// listStream walks a paged list of one object, committing after every sink call.
func (s *slice) listStream(ctx context.Context, i int, object, firstURL string,
	fetch func(context.Context, string) (page[mapping.Source], error)) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp listCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	for {
		url := cp.PageURL
		if url == "" {
			url = firstURL
		}
		p, err := fetch(ctx, url)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", st.Name, err)
		}
		cp.Index = min(cp.Index, len(p.Rows))
		rows := make([]pendingRow, 0, len(p.Rows)-cp.Index)
		for j, src := range p.Rows[cp.Index:] {
			rows = append(rows, s.e.mapRow(object, src, cp.Index+j))
		}
		for {
			n := min(s.chunk(len(rows)), len(rows))
			t, err := s.write(ctx, object, rows[:n], st.Name)
			if err != nil {
				return "", fmt.Errorf("write %s: %w", st.Name, err)
			}
			rows = rows[n:]
			cp.Index += n
			done := false
			if len(rows) == 0 {
				if p.Next == "" {
					done = true
				} else {
					cp = listCursor{PageURL: p.Next, Pages: cp.Pages + 1}
				}
			}
			state, err := s.commit(ctx, i, cp, done, t, nil, 0)
			if err != nil || state != runstore.Running || done {
				return state, err
			}
			if s.timeUp() {
				return state, nil
			}
			if len(rows) == 0 {
				break
			}
		}
	}
}

func decodeCheckpoint(raw json.RawMessage, into any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("decode checkpoint: %w", err)
	}
	return nil
}

// learnerCursor is the checkpoint of a domain's learners stream. Students of a page are
// upserted ahead of their progress, so two frontiers move through the same page.
type learnerCursor struct {
	PageURL string `json:"page_url,omitempty"`
	// Students counts the page's learners whose student row Salesforce has accepted.
	Students int `json:"students"`
	// Index is the first learner of the page whose progress rows are not all accepted.
	Index int `json:"index"`
	// Partial holds the external ids of learner Index's rows already accepted, when a sink
	// call split that learner's rows, so a resume skips exactly those.
	Partial []string `json:"partial,omitempty"`
	Pages   int      `json:"pages"`
}

// learnersStream walks a domain's learners page by page: the page's students first, then
// each learner's progress, fetched concurrently through the shared rate limiter while
// earlier rows are being written.
func (s *slice) learnersStream(ctx context.Context, i int) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp learnerCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	withStudents := contains(s.run.Plan.Objects, mapping.Student)
	withProgress := contains(s.run.Plan.Objects, mapping.CourseProgress)
	for {
		url := cp.PageURL
		if url == "" {
			url = s.e.Source.DomainUsersURL(st.Domain)
		}
		p, err := s.e.Source.DomainUsers(ctx, url)
		if err != nil {
			return "", fmt.Errorf("read learners of %s: %w", st.Domain, err)
		}
		lp := &learnerPage{learners: p.Results, ids: make([]string, len(p.Results))}
		for j, u := range p.Results {
			lp.ids[j] = u.User.ID
		}
		if lp.seen, err = s.e.Store.LearnersDone(ctx, s.run.ID, lp.ids); err != nil {
			return "", err
		}
		cp.Students = min(cp.Students, len(lp.ids))
		cp.Index = min(cp.Index, cp.Students)
		if !withStudents {
			cp.Students = len(lp.ids)
		}
		for withStudents && cp.Students < len(lp.ids) {
			state, err := s.writeStudents(ctx, i, &cp, lp, withProgress)
			if err != nil || state != runstore.Running || s.timeUp() {
				return state, err
			}
		}
		if withProgress && cp.Index < len(lp.ids) {
			state, err := s.writeProgress(ctx, i, &cp, lp)
			if err != nil || state != runstore.Running || cp.Index < len(lp.ids) {
				return state, err
			}
		}
		done := p.Next == ""
		cp = learnerCursor{PageURL: p.Next, Pages: cp.Pages + 1}
		state, err := s.commit(ctx, i, cp, done, nil, nil, 0)
		if err != nil || state != runstore.Running || done || s.timeUp() {
			return state, err
		}
	}
}

// learnerPage is one page of a domain's learners.
type learnerPage struct {
	learners []skilljar.DomainUser
	ids      []string
	// seen marks learners an earlier domain stream of this run already processed.
	seen []bool
}

// writeStudents upserts the next batch of the page's students.
func (s *slice) writeStudents(ctx context.Context, i int, cp *learnerCursor, lp *learnerPage, withProgress bool) (runstore.State, error) {
	st := s.run.Streams[i]
	start := cp.Students
	end := min(start+s.chunk(len(lp.ids)-start), len(lp.ids))
	t := newTally()
	var rows []pendingRow
	for j := start; j < end; j++ {
		if lp.seen[j] {
			t.add(mapping.Student, runstore.Counters{Read: 1, Skipped: 1})
			continue
		}
		rows = append(rows, s.e.mapRow(mapping.Student, mapping.StudentSource(lp.learners[j], st.Domain), j))
	}
	written, err := s.write(ctx, mapping.Student, rows, st.Name)
	if err != nil {
		return "", fmt.Errorf("write students of %s: %w", st.Domain, err)
	}
	for obj, c := range written.counters {
		t.add(obj, c)
	}
	t.rejected, t.samples = written.rejected, written.samples
	cp.Students = end
	var learners []string
	var progressDone int64
	if !withProgress {
		// Without progress to fetch, a learner is done once its student row is in.
		learners, progressDone = lp.ids[start:end], int64(end-start)
		cp.Index = end
	}
	return s.commit(ctx, i, *cp, false, t, learners, progressDone)
}

// fetched is one learner's progress, mapped and filtered to the run's domains.
type fetched struct {
	learner  int
	rows     []pendingRow
	filtered int64
	err      error
}

// writeProgress fetches the progress of the page's learners from cp.Index on and upserts it,
// committing after every sink call. It returns when the page is done, the slice's time is up
// (after writing everything already fetched) or an error stops it (after committing every
// learner fetched before the error).
func (s *slice) writeProgress(ctx context.Context, i int, cp *learnerCursor, lp *learnerPage) (runstore.State, error) {
	st := s.run.Streams[i]
	allowed := map[string]bool{}
	for _, d := range s.run.Plan.Domains {
		allowed[d] = true
	}
	partial := map[string]bool{}
	for _, id := range cp.Partial {
		partial[id] = true
	}

	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	quit := make(chan struct{})
	var quitOnce sync.Once
	stopFetching := func() { quitOnce.Do(func() { close(quit) }) }
	defer stopFetching()

	// The producer starts fetches in page order; the capacity of results bounds how many
	// learners may be fetched ahead of what Salesforce has accepted.
	results := make(chan chan fetched, s.e.cfg.MaxPendingLearners)
	sem := make(chan struct{}, s.e.cfg.ProgressConcurrency)
	go func() {
		defer close(results)
		for j := cp.Index; j < len(lp.ids); j++ {
			ch := make(chan fetched, 1)
			select {
			case <-quit:
				return
			case results <- ch:
			}
			if lp.seen[j] {
				ch <- fetched{learner: j}
				continue
			}
			select {
			case <-quit:
				ch <- fetched{learner: j, err: errSkipped}
				return
			case sem <- struct{}{}:
			}
			go func(j int) {
				defer func() { <-sem }()
				ch <- s.fetchProgress(fetchCtx, j, lp, allowed, st.Name)
			}(j)
		}
	}()

	var (
		pending  []pendingRow
		filtered = map[int]int64{}
		complete = cp.Index // learners [cp.Index, complete) are fetched in full
		fetchErr error
	)
	flush := func(n int) (runstore.State, error) {
		t, err := s.write(ctx, mapping.CourseProgress, pending[:n], st.Name)
		if err != nil {
			return "", fmt.Errorf("write course progress of %s: %w", st.Domain, err)
		}
		accepted := pending[:n]
		pending = pending[n:]
		next := complete
		if len(pending) > 0 {
			next = pending[0].learner
		}
		var nextPartial []string
		if len(pending) > 0 {
			if next == cp.Index {
				nextPartial = append(nextPartial, cp.Partial...)
			}
			for _, r := range accepted {
				if r.learner == next {
					nextPartial = append(nextPartial, r.ext)
				}
			}
		}
		for j := cp.Index; j < next; j++ {
			if f := filtered[j]; f > 0 {
				t.add(mapping.CourseProgress, runstore.Counters{Read: f, Filtered: f})
				delete(filtered, j)
			}
		}
		learners := lp.ids[cp.Index:next]
		progressDone := int64(next - cp.Index)
		cp.Index, cp.Partial = next, nextPartial
		return s.commit(ctx, i, *cp, false, t, learners, progressDone)
	}

	state := runstore.Running
	var writeErr error
	// flushWhile writes batches while more() holds; a failed write stops everything.
	flushWhile := func(more func() bool, size func() int) {
		for writeErr == nil && state == runstore.Running && more() {
			st, err := flush(size())
			if err != nil {
				writeErr = err
				stopFetching()
				return
			}
			state = st
		}
	}
	full := func() int { return s.chunk(len(pending)) }
	rest := func() int { return min(s.chunk(len(pending)), len(pending)) }
	for ch := range results {
		f := <-ch
		if f.err != nil {
			if fetchErr == nil && !errors.Is(f.err, errSkipped) {
				fetchErr = f.err
			}
			stopFetching()
			continue
		}
		if fetchErr != nil || writeErr != nil || state != runstore.Running {
			continue // drain what is in flight; it is fetched again after the resume
		}
		for _, r := range f.rows {
			if r.learner == cp.Index && partial[r.ext] {
				continue
			}
			pending = append(pending, r)
		}
		filtered[f.learner] = f.filtered
		complete = f.learner + 1
		flushWhile(func() bool { return len(pending) >= s.batchTarget() }, full)
		if complete-cp.Index >= s.e.cfg.MaxPendingLearners {
			flushWhile(func() bool { return len(pending) > 0 }, rest)
		}
		if s.timeUp() {
			stopFetching()
		}
	}
	// Write everything fetched in full and commit the learners it completes (also when a
	// fetch failed), so no fetched learner is fetched again after a resume.
	flushWhile(func() bool { return len(pending) > 0 }, rest)
	flushWhile(func() bool { return len(pending) == 0 && complete > cp.Index }, func() int { return 0 })
	switch {
	case writeErr != nil && fetchErr != nil:
		return "", fmt.Errorf("%w (and before it: %v)", writeErr, fetchErr)
	case writeErr != nil:
		return "", writeErr
	case fetchErr != nil:
		return "", fetchErr
	}
	return state, nil
}

// errSkipped marks a learner whose fetch never started because the slice was stopping.
var errSkipped = errors.New("not fetched: slice stopping")

// fetchProgress reads one learner's progress and maps the rows of the run's domains.
func (s *slice) fetchProgress(ctx context.Context, j int, lp *learnerPage, allowed map[string]bool, stream string) fetched {
	userID := lp.ids[j]
	entries, err := s.e.Source.UserProgress(ctx, userID)
	if errors.Is(err, skilljar.ErrNotFound) {
		// The learner was deleted between the list and this call: nothing left to copy.
		s.log.Info().Str("user_id", userID).Msg("learner vanished before its progress was read")
		return fetched{learner: j}
	}
	if err != nil {
		return fetched{learner: j, err: fmt.Errorf("read progress of learner %s: %w", userID, err)}
	}
	out := fetched{learner: j}
	for _, e := range entries {
		srcs := mapping.ProgressSources(userID, e)
		if !allowed[e.DomainName] {
			out.filtered += int64(len(srcs))
			continue
		}
		for _, src := range srcs {
			out.rows = append(out.rows, s.e.mapRow(mapping.CourseProgress, src, j))
		}
	}
	return out
}
