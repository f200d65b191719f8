package pipeline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// streamRedrive sends one object's rejected records of another run again.
const streamRedrive = "redrive"

// redrivePage is how many ledger rows a redrive stream reads at a time.
const redrivePage = 500

// RetryRejected starts a run that sends another run's rejected records to Salesforce again,
// parents first: records rejected for a data problem fixed since in Salesforce (a validation
// rule, a field permission) get in without re-reading Skilljar. Records that could not be
// mapped are mapped again, with the mapping in force now.
func (e *Engine) RetryRejected(ctx context.Context, id string) (*runstore.Run, error) {
	parent, err := e.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !parent.State.Terminal() {
		return nil, fmt.Errorf("%w: run %s is %s; retry its rejected records once it has ended", runstore.ErrBadTransition, id, parent.State)
	}
	if _, total, err := e.Store.RejectedPage(ctx, id, 0, 1); err != nil {
		return nil, err
	} else if total == 0 {
		return nil, &ValidationError{Field: "id", Message: fmt.Sprintf("run %s has no rejected records to retry", id)}
	}
	sc := parent.Scope
	sc.DryRun = false
	run, _, err := e.create(ctx, runstore.Meta{Kind: runstore.KindRedrive, Scope: sc, Trigger: "retry-rejected", Parent: id}, "")
	return run, err
}

// planRedrive makes one stream per object found in the parent's ledger, in dependency order.
func (s *slice) planRedrive(ctx context.Context) (runstore.Plan, int64, error) {
	present := map[string]bool{}
	var total int64
	for offset := 0; ; offset += redrivePage {
		rows, n, err := s.e.Store.RejectedPage(ctx, s.run.Parent, offset, redrivePage)
		if err != nil {
			return runstore.Plan{}, 0, err
		}
		total = n
		for _, r := range rows {
			present[r.Object] = true
		}
		if int64(offset+redrivePage) >= n {
			break
		}
	}
	var objects []string
	var streams []runstore.StreamDef
	for _, o := range s.e.Mapping.Names() {
		if present[o] {
			objects = append(objects, o)
			streams = append(streams, runstore.StreamDef{Name: streamRedrive + ":" + o, Kind: streamRedrive, Object: o})
		}
	}
	adaptations, err := Preflight(ctx, s.e.Sink, s.e.Mapping, objects, s.run.Scope)
	if err != nil {
		return runstore.Plan{}, 0, err
	}
	return runstore.Plan{Streams: streams, Objects: objects, Sink: s.run.Scope.SinkMode,
		Notes: []string{"retries the rejected records of run " + s.run.Parent}, Adaptations: adaptations}, total, nil
}

// redriveStream sends one object's rows of the parent's ledger again, committing after every
// sink call; its checkpoint is the ledger position.
type redriveStream struct {
	s   *slice
	i   int
	def runstore.StreamDef
	cp  listCursor
}

func openRedrive(s *slice, i int) (stream, error) {
	cp, err := checkpointOf[listCursor](s, i)
	return &redriveStream{s: s, i: i, def: s.run.Streams[i].StreamDef, cp: cp}, err
}

func (r *redriveStream) page(ctx context.Context) (*runstore.Commit, runstore.State, error) {
	s, object := r.s, r.def.Object
	ledger, total, err := s.e.Store.RejectedPage(ctx, s.run.Parent, r.cp.Index, redrivePage)
	if err != nil {
		return nil, "", err
	}
	var rows []pendingRow
	var positions []int // ledger position after each row, for the checkpoint
	for j, rej := range ledger {
		if rej.Object == object {
			rows = append(rows, s.e.redriveRow(rej))
			positions = append(positions, r.cp.Index+j+1)
		}
	}
	end := r.cp.Index + len(ledger)
	for len(rows) > 0 {
		n := min(s.chunk(len(rows)), len(rows))
		t, err := s.write(ctx, object, rows[:n], r.def.Name)
		if err != nil {
			return nil, "", fmt.Errorf("write %s: %w", r.def.Name, err)
		}
		r.cp.Index = positions[n-1]
		rows, positions = rows[n:], positions[n:]
		state, err := s.commit(ctx, runstore.Commit{Stream: r.i, Checkpoint: r.cp, ProgressDone: int64(n)}, t)
		if err != nil || state != runstore.Running || (len(rows) > 0 && s.timeUp()) {
			return nil, state, err
		}
	}
	r.cp.Index = end
	return &runstore.Commit{Checkpoint: r.cp, StreamDone: int64(end) >= total}, runstore.Running, nil
}

// redriveRow turns a ledger entry back into a row: the row that was sent, or for a record
// that could not be mapped, its source mapped again.
func (e *Engine) redriveRow(rej runstore.Rejected) pendingRow {
	if len(rej.Row) > 0 {
		var row salesforce.Record
		if err := json.Unmarshal(rej.Row, &row); err != nil {
			return pendingRow{object: rej.Object, ext: rej.ExternalID, mapErr: fmt.Errorf("ledger row is not JSON: %w", err)}
		}
		return pendingRow{object: rej.Object, ext: rej.ExternalID, row: row}
	}
	var src mapping.Source
	if err := json.Unmarshal(rej.Source, &src); err != nil {
		return pendingRow{object: rej.Object, ext: rej.ExternalID, mapErr: fmt.Errorf("ledger source is not JSON: %w", err)}
	}
	return e.mapRow(rej.Object, src, 0)
}
