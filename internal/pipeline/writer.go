package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
)

// samplesPerBatch bounds the dry-run sample rows one batch offers the store (which keeps a
// few per run).
const samplesPerBatch = 3

// pendingRow is one source record on its way to Salesforce.
type pendingRow struct {
	object string
	ext    string
	row    salesforce.Record
	// mapErr is set when the record could not be mapped; it is rejected without a call, and
	// src keeps the source record for the ledger.
	mapErr error
	src    mapping.Source
	// learner is the index, in its page, of the learner the row belongs to.
	learner int
}

// mapRow maps one source record, keeping a mapping failure on the row so it ends in the
// ledger instead of stopping the stream.
func (e *Engine) mapRow(object string, src mapping.Source, learner int) pendingRow {
	o, _ := e.Mapping.Object(object)
	row, ext, err := o.Row(src)
	if ext == "" {
		ext, _ = src["id"].(string)
	}
	r := pendingRow{object: object, ext: ext, row: row, learner: learner}
	if err != nil {
		// Only a record that could not be mapped keeps its source, for the ledger: the
		// rows in flight are most of a worker's memory.
		r.mapErr, r.src = err, src
	}
	return r
}

// tally is what one batch changes in the run's counters, ledger and samples.
type tally struct {
	counters map[string]runstore.Counters
	rejected []runstore.Rejected
	samples  []runstore.Sample
	// sobject and hashes record the content of the rows Salesforce accepted.
	sobject string
	hashes  map[string]string
}

// rowHash identifies a row's content: the same mapped values give the same hash.
func rowHash(r salesforce.Record) string {
	b, _ := json.Marshal(r) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func newTally() *tally { return &tally{counters: map[string]runstore.Counters{}} }

func (t *tally) add(object string, c runstore.Counters) {
	t.counters[object] = t.counters[object].Add(c)
}

func (t *tally) reject(r pendingRow, sobject, code, msg string, fields []string, stream string) {
	t.add(r.object, runstore.Counters{Read: 1, Rejected: 1})
	rej := runstore.Rejected{
		Object: r.object, SObject: sobject, ExternalID: r.ext, Code: code, Message: msg,
		Fields: fields, Stream: stream,
	}
	if r.row != nil {
		rej.Row, _ = json.Marshal(r.row)
	} else {
		rej.Source, _ = json.Marshal(r.src)
	}
	t.rejected = append(t.rejected, rej)
}

// batchTarget is how many pending rows make a full batch: one collections call, or one
// Bulk API job when the mode may use bulk (auto decides per batch by its size).
func (s *slice) batchTarget() int {
	switch s.run.Scope.SinkMode {
	case runstore.SinkBulk, runstore.SinkAuto:
		if !s.run.Scope.DryRun {
			return s.e.cfg.BulkBatchRows
		}
	}
	return s.e.cfg.CollectionsBatch
}

// chunk is how many of n pending rows the next sink call takes.
func (s *slice) chunk(n int) int {
	cfg := s.e.cfg
	switch {
	case s.run.Scope.DryRun:
		return n
	case s.run.Scope.SinkMode == runstore.SinkBulk:
		return cfg.BulkBatchRows
	case s.run.Scope.SinkMode == runstore.SinkAuto && n >= cfg.BulkThreshold:
		return cfg.BulkBatchRows
	}
	return cfg.CollectionsBatch
}

// write sends rows of one object to Salesforce in one call (a collections upsert or one
// Bulk API job) and tallies every row's outcome. A dry run tallies them as skipped and keeps
// a few as samples. An error means the call itself failed and nothing may be committed.
func (s *slice) write(ctx context.Context, object string, rows []pendingRow, stream string) (*tally, error) {
	t := newTally()
	o, _ := s.e.Mapping.Object(object)
	rows, err := s.holdBack(ctx, o, rows, t, stream)
	if err != nil {
		return nil, err
	}
	s.adaptRows(object, rows)
	send := make([]salesforce.Record, 0, len(rows))
	sent := make([]pendingRow, 0, len(rows))
	for _, r := range rows {
		if r.mapErr != nil {
			t.reject(r, o.SObject, "MAPPING_ERROR", r.mapErr.Error(), nil, stream)
			continue
		}
		send = append(send, r.row)
		sent = append(sent, r)
	}
	if len(send) == 0 {
		return t, nil
	}
	if s.run.Kind == runstore.KindCatchup {
		var err error
		if send, sent, err = s.skipUnchanged(ctx, o.SObject, send, sent, t); err != nil {
			return nil, err
		}
		if len(send) == 0 {
			return t, nil
		}
	}
	if s.run.Scope.DryRun {
		for i, r := range sent {
			t.add(object, runstore.Counters{Read: 1, Skipped: 1})
			if i < samplesPerBatch {
				raw, _ := json.Marshal(r.row)
				t.samples = append(t.samples, runstore.Sample{Object: object, Row: raw})
			}
		}
		return t, nil
	}
	var results []salesforce.Result
	if s.run.Scope.SinkMode == runstore.SinkBulk || (s.run.Scope.SinkMode == runstore.SinkAuto && len(send) >= s.e.cfg.BulkThreshold) {
		results, err = s.e.Sink.BulkUpsert(ctx, o.SObject, o.ExternalID, send)
	} else {
		results, err = s.e.Sink.Upsert(ctx, o.SObject, o.ExternalID, send)
	}
	if err != nil {
		return nil, err
	}
	t.sobject, t.hashes = o.SObject, make(map[string]string, len(results))
	for i, res := range results {
		r := sent[i]
		if res.Success {
			t.hashes[r.ext] = rowHash(r.row)
		}
		switch {
		case res.Success && res.Created:
			t.add(object, runstore.Counters{Read: 1, Written: 1, Created: 1})
		case res.Success:
			t.add(object, runstore.Counters{Read: 1, Written: 1, Updated: 1})
		default:
			code, msg, fields := "UNKNOWN", "Salesforce reported a failure without an error", []string(nil)
			if len(res.Errors) > 0 {
				code, fields = res.Errors[0].StatusCode, res.Errors[0].Fields
				msgs := make([]string, len(res.Errors))
				for j, e := range res.Errors {
					msgs[j] = e.StatusCode + ": " + e.Message
				}
				msg = withFix(o.SObject, code, strings.Join(msgs, "; "))
			}
			t.reject(r, o.SObject, code, msg, fields, stream)
		}
	}
	return t, nil
}

// holdBack keeps rows whose parent this run rejected from Salesforce, where they would only
// fail for a missing parent: they go to the ledger waiting for the parent, and a re-drive
// that lands the parent writes them. The rest are returned.
func (s *slice) holdBack(ctx context.Context, o *mapping.Object, rows []pendingRow, t *tally, stream string) ([]pendingRow, error) {
	type ref struct {
		row          int
		parent, ext  string
		relationship string
	}
	var refs []ref
	var objects, exts []string
	for _, f := range o.Fields {
		p, ok := s.e.Mapping.Object(f.Parent)
		if f.Relationship == "" || !ok {
			continue
		}
		for i, r := range rows {
			v, _ := r.row[f.Relationship].(map[string]any)
			if ext, _ := v[p.ExternalID].(string); ext != "" && r.mapErr == nil {
				refs = append(refs, ref{i, p.Name, ext, f.Relationship})
				objects, exts = append(objects, p.Name), append(exts, ext)
			}
		}
	}
	if len(refs) == 0 {
		return rows, nil
	}
	rejected, err := s.e.Store.RejectedIn(ctx, s.run.ID, objects, exts)
	if err != nil {
		return nil, err
	}
	held := map[int]bool{}
	for k, r := range refs {
		if rejected[k] && !held[r.row] {
			held[r.row] = true
			t.reject(rows[r.row], o.SObject, CodeWaitingForParent,
				fmt.Sprintf("held back: its parent %s %s was rejected; retrying the rejected records writes it once the parent lands", r.parent, r.ext),
				[]string{r.relationship}, stream)
		}
	}
	if len(held) == 0 {
		return rows, nil
	}
	keep := make([]pendingRow, 0, len(rows)-len(held))
	for i, r := range rows {
		if !held[i] {
			keep = append(keep, r)
		}
	}
	return keep, nil
}

// CodeWaitingForParent is the ledger code of a row held back because its parent was rejected.
const CodeWaitingForParent = "WAITING_FOR_PARENT"

// skipUnchanged drops the rows Salesforce already holds with the same content, counting
// them as skipped and unchanged.
func (s *slice) skipUnchanged(ctx context.Context, sobject string, send []salesforce.Record, sent []pendingRow, t *tally) ([]salesforce.Record, []pendingRow, error) {
	exts := make([]string, len(sent))
	for i, r := range sent {
		exts[i] = r.ext
	}
	stored, err := s.e.Store.RowHashes(ctx, sobject, exts)
	if err != nil {
		return nil, nil, err
	}
	keepSend, keepSent := send[:0:0], sent[:0:0]
	for i, r := range sent {
		if stored[i] != "" && stored[i] == rowHash(r.row) {
			t.add(r.object, runstore.Counters{Read: 1, Skipped: 1, Unchanged: 1})
			continue
		}
		keepSend, keepSent = append(keepSend, send[i]), append(keepSent, r)
	}
	return keepSend, keepSent, nil
}

// commit saves one commit of stream c.Stream with the outcomes of the batch it covers (t,
// nil for none) and mirrors its checkpoint in the slice's copy of the run; then it records
// the content hashes of the rows Salesforce accepted.
func (s *slice) commit(ctx context.Context, c runstore.Commit, t *tally) (runstore.State, error) {
	name := s.run.Streams[c.Stream].Name
	if t != nil {
		c.Counters, c.Rejected, c.Samples = t.counters, t.rejected, t.samples
		if n := len(t.rejected); n > 0 {
			c.Events = append(c.Events, runstore.Event{
				Level: "warn", Kind: "rejected", Stream: name,
				Message: pluralize(n, "record") + " rejected by Salesforce (first: " + t.rejected[0].Code + " on " + t.rejected[0].ExternalID + "); see the rejected-records ledger",
			})
		}
	}
	if c.StreamDone {
		c.Events = append(c.Events, runstore.Event{Level: "info", Kind: "stream_done", Stream: name, Message: "stream finished"})
	}
	state, err := s.e.Store.Commit(ctx, s.run.ID, s.fence, c)
	if err != nil {
		return "", err
	}
	raw, _ := json.Marshal(c.Checkpoint)
	s.run.Streams[c.Stream].Checkpoint = raw
	s.run.Streams[c.Stream].Done = c.StreamDone
	ev := s.logger().Debug()
	for obj, n := range c.Counters {
		ev = ev.Int64(obj+"_read", n.Read)
	}
	ev.Int64("learners_done", c.ProgressDone).Bool("stream_done", c.StreamDone).Msg("checkpoint saved")
	s.setPage(raw)
	if t != nil && len(t.hashes) > 0 {
		if herr := s.e.Store.SetRowHashes(ctx, t.sobject, t.hashes); herr != nil {
			s.logger().Warn().Err(herr).Msg("row hashes not saved; the next catch-up rewrites those rows")
		}
	}
	return state, nil
}

func pluralize(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
