package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Source is what the pipeline reads from Skilljar; *skilljar.Client is one. The list calls
// take a cursor the pipeline keeps in checkpoints without looking into it: "" is the first
// page, and a page's Next is the cursor of the one after it ("" after the last).
type Source interface {
	Domains(ctx context.Context) ([]skilljar.Domain, error)
	Courses(ctx context.Context, cursor string) (skilljar.Page[skilljar.Course], error)
	PublishedCourses(ctx context.Context, domain, cursor string) (skilljar.Page[skilljar.PublishedCourse], error)
	DomainUsers(ctx context.Context, domain, cursor string) (skilljar.Page[skilljar.DomainUser], error)
	DomainUserCount(ctx context.Context, domain string) (int64, error)
	UserProgress(ctx context.Context, userID string) ([]skilljar.UserCourseProgress, error)
	Users(ctx context.Context, cursor string) (skilljar.Page[skilljar.UserOverview], error)
}

// stream is one ordered walk through pages inside a run, resumable from its checkpoint.
// Each kind is its own type; walk is the page loop they all share.
type stream interface {
	// page works through the page at the stream's checkpoint: it reads it, writes what it
	// holds and commits every batch Salesforce accepts. It returns the commit that moves the
	// checkpoint past the page (StreamDone after the last), for walk to save; or nil when it
	// stopped inside the page because the slice's time is up or the run stopped (state
	// says which).
	page(ctx context.Context) (end *runstore.Commit, state runstore.State, err error)
}

// streamKind is how the plan schedules one kind of stream and how a slice opens one.
type streamKind struct {
	name string
	// plan returns the streams of this kind a run needs, in the order they run. Nil for
	// kinds only a particular run kind plans (redrive).
	plan func(ctx context.Context, p *planning) ([]runstore.StreamDef, error)
	// open builds the run's stream i from its definition and checkpoint.
	open func(s *slice, i int) (stream, error)
}

// streamKinds is every stream kind, in the order a plan runs them: the snapshot before any
// learner is read, parents before children.
var streamKinds = []streamKind{
	{streamSnapshot, planSnapshot, openSnapshot},
	{streamCourses, planCourses, openCourses},
	{streamPublishedCourses, planPublishedCourses, openPublishedCourses},
	{streamMembers, planMembers, openMembers},
	{streamLearners, planLearners, openLearners},
	{streamVerify, planVerify, openVerify},
	{streamChanged, planChanged, openChanged},
	{streamRedrive, nil, openRedrive},
	{streamLive, nil, openLive},
}

// planning is what the stream kinds plan a run from.
type planning struct {
	e   *Engine
	run *runstore.Run
	// objects are the run's objects with their parents; domains its resolved domains.
	objects, domains []string
	// total is how many learners the run expects to process; plans add to it.
	total int64
}

func (p *planning) has(object string) bool { return slices.Contains(p.objects, object) }

// learners reports whether the run reads learners: their students or their progress.
func (p *planning) learners() bool {
	return p.has(mapping.Student) || p.has(mapping.CourseProgress)
}

func (p *planning) catchup() bool { return p.run.Kind == runstore.KindCatchup }

// perDomain is one stream of a kind for each of the run's domains, named kind:domain.
func (p *planning) perDomain(kind string) []runstore.StreamDef {
	defs := make([]runstore.StreamDef, len(p.domains))
	for i, d := range p.domains {
		defs[i] = runstore.StreamDef{Name: kind + ":" + d, Kind: kind, Domain: d}
	}
	return defs
}

// walk advances stream i page by page until it is done, the slice's time is up or the run
// stops, saving the checkpoint after every page.
func (s *slice) walk(ctx context.Context, i int) (runstore.State, error) {
	kind := s.run.Streams[i].Kind
	k := slices.IndexFunc(streamKinds, func(k streamKind) bool { return k.name == kind })
	if k < 0 {
		return "", fmt.Errorf("unknown stream kind %q", kind)
	}
	st, err := streamKinds[k].open(s, i)
	if err != nil {
		return "", err
	}
	for {
		end, state, err := st.page(ctx)
		if err != nil || state != runstore.Running || end == nil {
			return state, err
		}
		end.Stream = i
		state, err = s.commit(ctx, *end, nil)
		if err != nil || state != runstore.Running || end.StreamDone || s.timeUp() {
			return state, err
		}
	}
}

// checkpointOf decodes stream i's checkpoint; a stream not started yet has the zero cursor.
func checkpointOf[C any](s *slice, i int) (C, error) {
	var cp C
	raw := s.run.Streams[i].Checkpoint
	if len(raw) == 0 || string(raw) == "null" {
		return cp, nil
	}
	if err := json.Unmarshal(raw, &cp); err != nil {
		return cp, fmt.Errorf("decode checkpoint of %s: %w", s.run.Streams[i].Name, err)
	}
	return cp, nil
}
