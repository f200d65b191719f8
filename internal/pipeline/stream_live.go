package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// streamLive writes the learners webhook deliveries named, as they arrive.
const streamLive = "live"

// livePage is how many queued learners a live stream claims at a time.
const livePage = 200

// LiveQueue is the queue of learners webhook deliveries named; *webhooks.Store is one.
type LiveQueue interface {
	// Claim takes up to max debounced learners ("id:<id>" or "email:<address>") into the
	// list named claim; the same name returns the same learners again.
	Claim(ctx context.Context, claim string, max int) ([]string, error)
	// TakeFullDetection reports and clears a request for the next catch-up to compare
	// every learner.
	TakeFullDetection(ctx context.Context) (bool, error)
}

// LearnerLookup finds one learner; *skilljar.Client is one. The live stream needs it on
// top of Source, since a delivery names a learner no list page has shown.
type LearnerLookup interface {
	User(ctx context.Context, id string) (skilljar.UserOverview, error)
	UserByEmail(ctx context.Context, email string) (skilljar.UserOverview, error)
	DomainUser(ctx context.Context, domain, id string) (skilljar.DomainUser, error)
}

// liveLearner is what a lookup found: the student record, or that the learner is in none
// of the run's domains.
type liveLearner struct {
	id      string
	student mapping.Source
	outside bool
}

// liveStream claims pages of queued learners and writes each with the learner page's
// machinery: the learner looked up, the student row, then the learner's progress, through
// the same mapping, row hashes and ledger as any run. Every Skilljar call it makes first
// waits on Deps.LiveBudget, the share of the budget webhooks may take, and then on the
// shared limiter like every call, so a burst neither starves a running backfill nor pushes
// the key into 429. Its cursor's page count names the claim, so a retried page writes
// exactly the learners it claimed.
type liveStream struct {
	s  *slice
	i  int
	cp learnerCursor
}

// StartLive starts a live run over the scope's learners, writing what the webhook queue
// holds. A live run already active returns its *runstore.ConflictError: it drains the queue
// until it is empty.
func (e *Engine) StartLive(ctx context.Context, sc runstore.Scope) (*runstore.Run, error) {
	if e.Live == nil {
		return nil, errors.New("pipeline: no webhook queue (Deps.Live) to run live from")
	}
	sc.Objects = []string{mapping.CourseProgress, mapping.Student}
	sc.DryRun = false
	run, _, err := e.Start(ctx, StartRequest{Kind: runstore.KindLive, Scope: sc, Trigger: "webhook"})
	return run, err
}

// planLive is the whole plan of a live run: one live stream over the scope's domains. Like a
// redrive it has no preflight: the objects were checked by the backfill that created them.
func (s *slice) planLive(ctx context.Context) error {
	domains, err := s.scopeDomains(ctx, s.run.Scope.Domains)
	if err != nil {
		return err
	}
	var objects []string
	for _, o := range mapping.Order {
		if slices.Contains(s.run.Scope.Objects, o) {
			objects = append(objects, o)
		}
	}
	p := runstore.Plan{Streams: []runstore.StreamDef{{Name: streamLive, Kind: streamLive}},
		Domains: dedupeSorted(domains), Objects: objects, Sink: s.run.Scope.SinkMode}
	return s.savePlan(ctx, p, 0)
}

func openLive(s *slice, i int) (stream, error) {
	if s.e.Live == nil {
		return nil, errors.New("pipeline: a live run needs the webhook queue (Deps.Live)")
	}
	cp, err := checkpointOf[learnerCursor](s, i)
	return &liveStream{s: s, i: i, cp: cp}, err
}

func (l *liveStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s := l.s
	keys, err := s.e.Live.Claim(ctx, fmt.Sprintf("%s:%d", s.run.ID, l.cp.Pages), livePage)
	if err != nil {
		return nil, "", err
	}
	if len(keys) == 0 {
		return &runstore.Commit{Checkpoint: l.cp, StreamDone: true}, runstore.Running, nil
	}
	lookup, ok := s.e.Source.(LearnerLookup)
	if !ok {
		return nil, "", errors.New("pipeline: the live stream needs a Source that looks learners up")
	}
	lp := s.newLearnerPage(l.i, len(keys))
	lp.seen, lp.outside = make([]bool, len(keys)), make([]bool, len(keys))
	// A resumed page looks a learner up only if its student row is not in yet, or it came
	// by email and its progress is not in yet: an id key is the learner's id.
	var todo []int
	for j, key := range keys {
		kind, v, _ := strings.Cut(key, ":")
		lp.ids[j] = v
		if j >= l.cp.Students || (kind == "email" && j >= l.cp.Index) {
			todo = append(todo, j)
		}
	}
	// Each learner costs a lookup and a progress read; both are paid into the live budget
	// here, before either is made.
	f := fetchOrdered(ctx, len(todo), s.e.cfg.ProgressConcurrency, len(todo), func(ctx context.Context, k int) (liveLearner, error) {
		for range 2 {
			if err := l.budget(ctx); err != nil {
				return liveLearner{}, err
			}
		}
		var u skilljar.UserOverview
		var err error
		if kind, v, _ := strings.Cut(keys[todo[k]], ":"); kind == "email" {
			u, err = lookup.UserByEmail(ctx, v)
		} else {
			u, err = lookup.User(ctx, lp.ids[todo[k]])
		}
		if err != nil {
			return liveLearner{}, err
		}
		return l.member(ctx, lookup, u)
	})
	defer f.Close()
	for _, j := range todo {
		r, _ := f.Next()
		switch {
		case errors.Is(r.Err, skilljar.ErrNotFound):
			// A delivery naming a learner the API does not know is not trusted further.
			lp.outside[j] = true
		case r.Err != nil:
			return nil, "", fmt.Errorf("look up learner %s named by a webhook: %w", keys[j], r.Err)
		default:
			lp.ids[j], lp.students[j], lp.outside[j] = r.Value.id, r.Value.student, r.Value.outside
		}
	}
	state, err := lp.write(ctx, &l.cp)
	if err != nil || state != runstore.Running || l.cp.Index < len(lp.ids) {
		return nil, state, err
	}
	l.cp = learnerCursor{Pages: l.cp.Pages + 1}
	return &runstore.Commit{Checkpoint: l.cp}, state, nil
}

// member finds the learner in the run's domain allow-list: a run of every domain takes
// anyone, a scoped one asks each allowed domain in turn (one more call each, paid into the
// live budget), as a delivery may name a learner of any domain.
func (l *liveStream) member(ctx context.Context, lookup LearnerLookup, u skilljar.UserOverview) (liveLearner, error) {
	if len(l.s.run.Scope.Domains) == 0 {
		return liveLearner{id: u.User.ID, student: mapping.StudentSourceFromUser(u.User)}, nil
	}
	for _, d := range l.s.run.Plan.Domains {
		if err := l.budget(ctx); err != nil {
			return liveLearner{}, err
		}
		du, err := lookup.DomainUser(ctx, d, u.User.ID)
		if errors.Is(err, skilljar.ErrNotFound) {
			continue
		}
		if err != nil {
			return liveLearner{}, err
		}
		return liveLearner{id: u.User.ID, student: mapping.StudentSource(du, d)}, nil
	}
	return liveLearner{id: u.User.ID, outside: true}, nil
}

func (l *liveStream) budget(ctx context.Context) error {
	if l.s.e.LiveBudget == nil {
		return nil
	}
	if _, err := l.s.e.LiveBudget.Wait(ctx); err != nil {
		return fmt.Errorf("wait for the webhook share of the Skilljar budget: %w", err)
	}
	return nil
}
