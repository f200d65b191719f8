package pipeline

import (
	"context"
	"fmt"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Stream kinds over a plain list of one object.
const (
	streamCourses          = "courses"
	streamPublishedCourses = "published_courses"
)

// listCursor is the checkpoint of a stream over a plain list: the page being read and how
// many of its rows Salesforce has accepted.
type listCursor struct {
	Cursor string `json:"page_url,omitempty"`
	Index  int    `json:"index"`
	Pages  int    `json:"pages"`
}

// listStream walks a paged list of one object, committing after every sink call.
type listStream struct {
	s      *slice
	i      int
	object string
	fetch  func(ctx context.Context, cursor string) ([]mapping.Source, string, error)
	cp     listCursor
}

func planCourses(_ context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.has(mapping.Course) {
		return nil, nil
	}
	return []runstore.StreamDef{{Name: streamCourses, Kind: streamCourses}}, nil
}

func openCourses(s *slice, i int) (stream, error) {
	return openList(s, i, mapping.Course, func(ctx context.Context, cursor string) ([]mapping.Source, string, error) {
		p, err := s.e.Source.Courses(ctx, cursor)
		return flatten(p, mapping.CourseSource), p.Next, err
	})
}

// planPublishedCourses walks each domain's published courses: the API lists them per domain.
func planPublishedCourses(_ context.Context, p *planning) ([]runstore.StreamDef, error) {
	if !p.has(mapping.PublishedCourse) {
		return nil, nil
	}
	return p.perDomain(streamPublishedCourses), nil
}

func openPublishedCourses(s *slice, i int) (stream, error) {
	domain := s.run.Streams[i].Domain
	return openList(s, i, mapping.PublishedCourse, func(ctx context.Context, cursor string) ([]mapping.Source, string, error) {
		p, err := s.e.Source.PublishedCourses(ctx, domain, cursor)
		return flatten(p, mapping.PublishedCourseSource), p.Next, err
	})
}

func openList(s *slice, i int, object string, fetch func(context.Context, string) ([]mapping.Source, string, error)) (stream, error) {
	cp, err := checkpointOf[listCursor](s, i)
	return &listStream{s: s, i: i, object: object, fetch: fetch, cp: cp}, err
}

// flatten turns a page's records into rows for the mapping with the record kind's flattener.
func flatten[T any](p skilljar.Page[T], f func(T) mapping.Source) []mapping.Source {
	rows := make([]mapping.Source, len(p.Results))
	for i, r := range p.Results {
		rows[i] = f(r)
	}
	return rows
}

func (l *listStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	name := l.s.run.Streams[l.i].Name
	srcs, next, err := l.fetch(ctx, l.cp.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	l.cp.Index = min(l.cp.Index, len(srcs))
	rows := make([]pendingRow, 0, len(srcs)-l.cp.Index)
	for j, src := range srcs[l.cp.Index:] {
		rows = append(rows, l.s.e.mapRow(l.object, src, l.cp.Index+j))
	}
	for len(rows) > 0 {
		n := min(l.s.chunk(len(rows)), len(rows))
		t, err := l.s.write(ctx, l.object, rows[:n], name)
		if err != nil {
			return nil, "", fmt.Errorf("write %s: %w", name, err)
		}
		rows, l.cp.Index = rows[n:], l.cp.Index+n
		state, err := l.s.commit(ctx, runstore.Commit{Stream: l.i, Checkpoint: l.cp}, t)
		if err != nil || state != runstore.Running || (len(rows) > 0 && l.s.timeUp()) {
			return nil, state, err
		}
	}
	l.cp = listCursor{Cursor: next, Pages: l.cp.Pages + 1}
	return &runstore.Commit{Checkpoint: l.cp, StreamDone: next == ""}, runstore.Running, nil
}
