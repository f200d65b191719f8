package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// learnerCursor is the checkpoint of a stream over pages of learners (a domain's, or a
// catch-up's changed learners). Students of a page are upserted ahead of their progress, so
// two frontiers move through the same page.
type learnerCursor struct {
	Cursor string `json:"page_url,omitempty"`
	// Students counts the page's learners whose student row Salesforce has accepted.
	Students int `json:"students"`
	// Index is the first learner of the page whose progress rows are not all accepted.
	Index int `json:"index"`
	// Partial holds the external ids of learner Index's rows already accepted, when a sink
	// call split that learner's rows, so a resume skips exactly those.
	Partial []string `json:"partial,omitempty"`
	Pages   int      `json:"pages"`
}

// learnerPage is one page of learners being written: a domain's users, or a catch-up's
// changed learners. Students of the page go first, then each learner's progress.
type learnerPage struct {
	s *slice
	// stream is the index of the stream the page belongs to.
	stream int
	ids    []string
	// students are the learners' student records.
	students []mapping.Source
	// seen marks learners an earlier stream of this run already processed; outside marks
	// learners in none of the run's domains. Neither is read or written.
	seen, outside []bool
	// contacts holds each learner's linked Contact Id, when Link Contacts is on.
	contacts []string
}

func (s *slice) newLearnerPage(stream, n int) *learnerPage {
	return &learnerPage{s: s, stream: stream, ids: make([]string, n), students: make([]mapping.Source, n)}
}

// passOver reports whether learner j is neither read nor written.
func (lp *learnerPage) passOver(j int) bool {
	return lp.seen[j] || (lp.outside != nil && lp.outside[j])
}

// batch is one sink call's worth of rows with everything its commit changes.
type batch struct {
	object string
	rows   []pendingRow
	// extra counts outcomes that need no call: students seen in an earlier domain, progress
	// rows of other domains.
	extra        map[string]runstore.Counters
	cp           learnerCursor
	learners     []string
	progressDone int64
	events       []runstore.Event
}

// pageWriter upserts batches in the order they are queued and commits each one, so parents
// stay ahead of children while the fetching goes on.
type pageWriter struct {
	queue chan batch
	// stopped is closed when the writer will take no more batches: a write failed or the run
	// was paused or cancelled.
	stopped   chan struct{}
	done      chan struct{}
	state     runstore.State
	err       error
	committed learnerCursor
}

// newPageWriter starts the writer of a page of stream i whose cursor stands at from.
func newPageWriter(ctx context.Context, s *slice, i int, from learnerCursor) *pageWriter {
	def := s.run.Streams[i]
	w := &pageWriter{queue: make(chan batch), stopped: make(chan struct{}), done: make(chan struct{}),
		state: runstore.Running, committed: from}
	var once sync.Once
	stop := func() { once.Do(func() { close(w.stopped) }) }
	go func() {
		defer close(w.done)
		defer stop()
		for b := range w.queue {
			if w.err != nil || w.state != runstore.Running {
				continue
			}
			t, err := s.write(ctx, b.object, b.rows, def.Name)
			if err != nil {
				w.err = fmt.Errorf("write %s of %s: %w", b.object, def.Name, err)
				stop()
				continue
			}
			for obj, c := range b.extra {
				t.add(obj, c)
			}
			state, err := s.commit(ctx, runstore.Commit{Stream: i, Checkpoint: b.cp, Learners: b.learners,
				ProgressDone: b.progressDone, Events: b.events}, t)
			if err != nil {
				w.err = err
				stop()
				continue
			}
			w.committed, w.state = b.cp, state
			if state != runstore.Running {
				stop()
			}
		}
	}()
	return w
}

// send queues a batch; false means the writer has stopped.
func (w *pageWriter) send(b batch) bool {
	select {
	case w.queue <- b:
		return true
	case <-w.stopped:
		return false
	}
}

// isStopped reports whether the writer takes no more batches.
func (w *pageWriter) isStopped() bool {
	select {
	case <-w.stopped:
		return true
	default:
		return false
	}
}

// close waits for every queued batch and returns the writer's outcome.
func (w *pageWriter) close() (runstore.State, learnerCursor, error) {
	close(w.queue)
	<-w.done
	return w.state, w.committed, w.err
}

// write writes the rest of the page from cp: its students, then its learners' progress. It
// returns when the page is done, the slice's time is up (after writing what was fetched) or
// an error stops it, with cp set to what Salesforce accepted. While the writer runs, only it
// touches the slice's copy of the run's streams.
func (lp *learnerPage) write(ctx context.Context, cp *learnerCursor) (runstore.State, error) {
	s := lp.s
	cp.Students = min(cp.Students, len(lp.ids))
	cp.Index = min(cp.Index, cp.Students)
	withStudents := slices.Contains(s.run.Plan.Objects, mapping.Student)
	withProgress := slices.Contains(s.run.Plan.Objects, mapping.CourseProgress)
	if !withStudents {
		cp.Students = len(lp.ids)
	}
	var linkEvent *runstore.Event
	if s.run.Scope.LinkContacts && !s.run.Scope.DryRun {
		ev, err := lp.linkContacts(ctx, cp.Index)
		if err != nil {
			return runstore.Running, err
		}
		linkEvent = ev
	}
	w := newPageWriter(ctx, s, lp.stream, *cp)
	queued := *cp
	for queued.Students < len(lp.ids) {
		b := lp.studentBatch(&queued, withProgress)
		if linkEvent != nil {
			b.events, linkEvent = append(b.events, *linkEvent), nil
		}
		if !w.send(b) {
			break
		}
	}
	var fetchErr error
	if withProgress && queued.Index < len(lp.ids) && !w.isStopped() {
		fetchErr = lp.sendProgress(ctx, &queued, w)
	}
	state, committed, err := w.close()
	*cp = committed
	switch {
	case err != nil && fetchErr != nil:
		return state, fmt.Errorf("%w (and before it: %w)", err, fetchErr)
	case err != nil:
		return state, err
	}
	return state, fetchErr
}

// studentBatch takes the next students of the page.
func (lp *learnerPage) studentBatch(cp *learnerCursor, withProgress bool) batch {
	s := lp.s
	start := cp.Students
	end := min(start+s.chunk(len(lp.ids)-start), len(lp.ids))
	b := batch{object: mapping.Student, extra: map[string]runstore.Counters{}}
	for j := start; j < end; j++ {
		if lp.passOver(j) {
			c := b.extra[mapping.Student]
			c.Read++
			if lp.seen[j] {
				c.Skipped++
			} else {
				c.Filtered++
			}
			b.extra[mapping.Student] = c
			continue
		}
		r := s.e.mapRow(mapping.Student, lp.students[j], j)
		if lp.contacts != nil {
			c := b.extra[contactObject]
			c.Read++
			if lp.setContact(mapping.Student, r, j) {
				c.Written++
				c.Updated++
			} else {
				c.Skipped++
			}
			b.extra[contactObject] = c
		}
		b.rows = append(b.rows, r)
	}
	cp.Students = end
	if !withProgress {
		// Without progress to fetch, a learner is done once its student row is in.
		b.learners, b.progressDone = lp.ids[start:end], int64(end-start)
		cp.Index = end
	}
	b.cp = *cp
	return b
}

// fetched is one learner's progress, mapped and filtered to the run's domains.
type fetched struct {
	learner  int
	rows     []pendingRow
	filtered int64
}

// sendProgress fetches the progress of the page's learners from cp.Index on, concurrently
// through the shared rate limiter and handed back in page order, and queues full batches to
// the writer. On time-up or an error it stops fetching and queues everything already fetched
// in full, so no learner whose progress was read is read again after a resume. It returns
// the first fetch error.
func (lp *learnerPage) sendProgress(ctx context.Context, cp *learnerCursor, w *pageWriter) error {
	s := lp.s
	allowed := map[string]bool{}
	for _, d := range s.run.Plan.Domains {
		allowed[d] = true
	}
	start := cp.Index
	f := fetchOrdered(ctx, len(lp.ids)-start, s.e.cfg.ProgressConcurrency,
		max(s.e.cfg.MaxPendingLearners/2, s.e.cfg.ProgressConcurrency),
		func(ctx context.Context, k int) (fetched, error) {
			if lp.passOver(start + k) {
				return fetched{learner: start + k}, nil
			}
			return lp.fetchProgress(ctx, start+k, allowed)
		})
	defer f.Close()
	q := newProgressBatches(cp, lp, w)
	var fetchErr error
	for q.sending {
		r, ok := f.Next()
		if !ok {
			break
		}
		if r.Err != nil {
			// The learners from here on are fetched again after the resume.
			fetchErr = r.Err
			break
		}
		q.add(r.Value)
		if s.timeUp() || w.isStopped() {
			f.Stop()
		}
	}
	f.Close()
	q.flush()
	return fetchErr
}

// progressBatches cuts the progress rows of a page, learner by learner in page order, into
// sink batches, each with the learner cursor that holds once Salesforce accepts it.
type progressBatches struct {
	lp *learnerPage
	w  *pageWriter
	// cp is the cursor after the batches queued so far.
	cp *learnerCursor
	// resumed holds the rows of learner start already accepted before a resume.
	start   int
	resumed map[string]bool
	pending []pendingRow
	// filtered counts, per learner, the rows of other domains.
	filtered map[int]int64
	// complete is one past the last learner whose progress is in pending or queued.
	complete int
	// sending is false once the writer took no more batches.
	sending bool
	// lastCut is when the last batch was queued: fetched progress waits at most FlushAfter.
	lastCut time.Time
}

func newProgressBatches(cp *learnerCursor, lp *learnerPage, w *pageWriter) *progressBatches {
	resumed := map[string]bool{}
	for _, id := range cp.Partial {
		resumed[id] = true
	}
	return &progressBatches{lp: lp, w: w, cp: cp, start: cp.Index, resumed: resumed,
		filtered: map[int]int64{}, complete: cp.Index, sending: true, lastCut: time.Now()}
}

// add takes one learner's progress and queues the batches it completes.
func (q *progressBatches) add(f fetched) {
	for _, r := range f.rows {
		if r.learner == q.start && q.resumed[r.ext] {
			continue
		}
		q.pending = append(q.pending, r)
	}
	q.filtered[f.learner] = f.filtered
	q.complete = f.learner + 1
	cfg := q.lp.s.e.cfg
	for q.sending && len(q.pending) >= q.lp.s.batchTarget() {
		q.cut(q.lp.s.chunk(len(q.pending)))
	}
	if q.complete-q.cp.Index >= cfg.MaxPendingLearners || time.Since(q.lastCut) >= cfg.FlushAfter {
		q.flush()
	}
}

// flush queues every pending row, and the learners complete without rows.
func (q *progressBatches) flush() {
	for q.sending && len(q.pending) > 0 {
		q.cut(min(q.lp.s.chunk(len(q.pending)), len(q.pending)))
	}
	if q.sending && q.complete > q.cp.Index {
		q.cut(0)
	}
}

// cut queues the first n pending rows as a batch, with the cursor that holds once they are
// accepted: at the first learner with rows still pending (and the rows of it this batch
// carries), or past every complete learner.
func (q *progressBatches) cut(n int) {
	b := batch{object: mapping.CourseProgress, rows: q.pending[:n:n], extra: map[string]runstore.Counters{}}
	q.pending = q.pending[n:]
	next, partial := q.complete, []string(nil)
	if len(q.pending) > 0 {
		next = q.pending[0].learner
		if next == q.cp.Index {
			partial = append(partial, q.cp.Partial...)
		}
		for _, r := range b.rows {
			if r.learner == next {
				partial = append(partial, r.ext)
			}
		}
	}
	for j := q.cp.Index; j < next; j++ {
		if f := q.filtered[j]; f > 0 {
			b.extra[mapping.CourseProgress] = b.extra[mapping.CourseProgress].Add(runstore.Counters{Read: f, Filtered: f})
			delete(q.filtered, j)
		}
	}
	b.learners, b.progressDone = q.lp.ids[q.cp.Index:next], int64(next-q.cp.Index)
	q.cp.Index, q.cp.Partial = next, partial
	b.cp = *q.cp
	q.sending = q.sending && q.w.send(b)
	q.lastCut = time.Now()
}

// fetchProgress reads one learner's progress and maps the rows of the run's domains.
func (lp *learnerPage) fetchProgress(ctx context.Context, j int, allowed map[string]bool) (fetched, error) {
	s := lp.s
	userID := lp.ids[j]
	entries, err := s.e.Source.UserProgress(ctx, userID)
	if errors.Is(err, skilljar.ErrNotFound) {
		// The learner was deleted between the list and this call: nothing left to copy.
		s.logger().Info().Str("user_id", userID).Msg("learner vanished before its progress was read")
		return fetched{learner: j}, nil
	}
	if err != nil {
		return fetched{}, fmt.Errorf("read progress of learner %s: %w", userID, err)
	}
	out := fetched{learner: j}
	for _, e := range entries {
		srcs := mapping.ProgressSources(userID, e)
		if !allowed[e.DomainName] {
			out.filtered += int64(len(srcs))
			continue
		}
		for _, src := range srcs {
			r := s.e.mapRow(mapping.CourseProgress, src, j)
			lp.setContact(mapping.CourseProgress, r, j)
			out.rows = append(out.rows, r)
		}
	}
	return out, nil
}
