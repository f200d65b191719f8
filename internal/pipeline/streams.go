package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// listCursor is the checkpoint of a stream over a plain list: the page being read and how
// many of its rows Salesforce has accepted.
type listCursor struct {
	Cursor string `json:"page_url,omitempty"`
	Index  int    `json:"index"`
	Pages  int    `json:"pages"`
}

// listStream walks a paged list of one object, committing after every sink call.
func (s *slice) listStream(ctx context.Context, i int, object string,
	fetch func(context.Context, string) (page[mapping.Source], error)) (runstore.State, error) {
	st := s.run.Streams[i]
	var cp listCursor
	if err := decodeCheckpoint(st.Checkpoint, &cp); err != nil {
		return "", err
	}
	for {
		p, err := fetch(ctx, cp.Cursor)
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
					cp = listCursor{Cursor: p.Next, Pages: cp.Pages + 1}
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
