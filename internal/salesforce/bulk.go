package salesforce

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Codes the client puts on records Salesforce never reported on, so the rejected-records
// ledger can tell them from Salesforce's own codes.
const (
	// CodeBulkUnprocessed marks a record the job never processed: it failed or was aborted first.
	CodeBulkUnprocessed = "BULK_UNPROCESSED"
	// CodeBulkNoResult marks a record that appeared in none of the job's result sets.
	CodeBulkNoResult = "BULK_NO_RESULT"
)

// bulkMaxUpload keeps one upload under the documented 150 MB (after base64) limit.
const bulkMaxUpload = 100 << 20

// bulkCleanupTimeout bounds the best-effort abort and delete after a job, which run even
// when the caller's context is already done.
const bulkCleanupTimeout = 30 * time.Second

type jobInfo struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	ContentURL   string `json:"contentUrl"`
	ErrorMessage string `json:"errorMessage"`
	// Counters let a clean job skip the result sets it cannot have: every result read is
	// an API call from the org's daily allocation.
	Processed *int `json:"numberRecordsProcessed"`
	Failed    *int `json:"numberRecordsFailed"`
}

// needs reports whether a result set can hold rows for a job of n records; when the job
// does not report its counters, every set is read.
func (j jobInfo) needs(set string, n int) bool {
	complete := j.State == "JobComplete" && j.Processed != nil && j.Failed != nil
	switch {
	case !complete:
		return true
	case set == "successfulResults/":
		return *j.Processed > *j.Failed
	case set == "failedResults/":
		return *j.Failed > 0
	}
	return *j.Processed < n // unprocessedrecords/
}

func (j jobInfo) final() bool {
	switch j.State {
	case "JobComplete", "Failed", "Aborted":
		return true
	}
	return false
}

// BulkUpsert writes recs to sobject by extIDField through Bulk API 2.0 ingest jobs and
// returns one Result per record in input order. Bulk results come back unordered, so they are
// matched to records by external id; records a job never processed come back failed with
// CodeBulkUnprocessed. Records are grouped by parent; one job carries them all unless the
// object showed it tolerates smaller jobs, or is written serially (SerialJobRows), and jobs
// run in parallel within MaxConcurrency unless serial. A job that fails as a whole for its
// size (Config.SplitOn on its errorMessage) has its unprocessed rows split in halves, down to
// collections calls for halves of CollectionsMax or fewer; rows that failed with such an error
// each, and rows that failed with UNABLE_TO_LOCK_ROW, go again through collections. A job
// that did not finish is aborted and deleted, best effort.
//
// In the CSV, a nil value becomes #N/A (clear the field) and an absent key an empty cell
// (leave it unchanged); an empty string is therefore also "unchanged" here, whereas a JSON
// upsert would clear the field.
func (c *Client) BulkUpsert(ctx context.Context, sobject, extIDField string, recs []Record) ([]Result, error) {
	w, err := c.writer(sobject, extIDField)
	if err != nil {
		return nil, err
	}
	return w.write(ctx, recs, true)
}

// bulk is the Bulk API pass over recs: every job's CSV is built before the first call, so
// records CSV cannot carry fail the call before anything is written.
func (w *writer) bulk(ctx context.Context, recs []Record) ([]Result, error) {
	_, learned, serial, _ := w.obj.snapshot()
	adaptive := !w.c.cfg.DisableAdaptation
	if adaptive && learned > 0 && learned <= CollectionsMax {
		// The object takes no job bigger than a collections call: collections are cheaper.
		return w.collections(ctx, recs)
	}
	order, _ := w.order(recs)
	size := len(recs)
	if adaptive && learned > 0 {
		size = min(size, learned)
	}
	if serial {
		size = min(size, w.c.cfg.SerialJobRows)
	}
	type piece struct {
		idx  []int
		recs []Record
		data []byte
	}
	var pieces []piece
	for start := 0; start < len(order); start += size {
		p := piece{idx: order[start:min(start+size, len(order))]}
		p.recs = make([]Record, len(p.idx))
		for j, i := range p.idx {
			p.recs[j] = recs[i]
		}
		var err error
		if p.data, err = w.csv(p.recs); err != nil {
			return nil, err
		}
		pieces = append(pieces, p)
	}

	results := make([]Result, len(recs))
	err := w.each(ctx, serial, len(pieces), func(ctx context.Context, n int) error {
		p := pieces[n]
		res, _, err := w.splitJob(ctx, p.recs, p.data)
		if err != nil {
			return err
		}
		for j, i := range p.idx {
			results[i] = res[j]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// csv builds one job's upload and checks it fits.
func (w *writer) csv(recs []Record) ([]byte, error) {
	data, err := buildCSV(w.extID, recs)
	if err != nil {
		return nil, fmt.Errorf("salesforce: bulk %s: %w", w.sobject, err)
	}
	if len(data) > bulkMaxUpload {
		return nil, fmt.Errorf("salesforce: bulk %s: %d records make %d MB of CSV, over the %d MB a job takes; split them",
			w.sobject, len(recs), len(data)>>20, bulkMaxUpload>>20)
	}
	return data, nil
}

// splitJob runs recs as one job (data is their CSV, or nil to build it). Rows the job
// failed one by one with an error SplitOn marks go again through collections. When the job
// failed as a whole for its size, the rows it left unprocessed are split in halves and sent
// again, halves of CollectionsMax or fewer through collections; when both halves went
// through, the object's jobs are capped at the half from then on. failedWhole reports
// whether this job itself failed so.
func (w *writer) splitJob(ctx context.Context, recs []Record, data []byte) (results []Result, failedWhole bool, err error) {
	if data == nil {
		if data, err = w.csv(recs); err != nil {
			return nil, false, err
		}
	}
	results, whole, err := w.c.bulkJob(ctx, w.sobject, w.extID, recs, data)
	if err != nil || w.c.cfg.DisableAdaptation {
		return results, whole != "", err
	}
	var left, heavy []int
	for i, r := range results {
		switch code := errorCodeOf(r); {
		case code == CodeBulkUnprocessed || code == CodeBulkNoResult:
			left = append(left, i)
		case code != "" && w.c.splits(code, r.Errors[0].Message):
			heavy = append(heavy, i)
		}
	}
	if len(heavy) > 0 {
		// Rows a trigger's limit failed one by one: their 200-record transaction was too
		// big for the org's automation, which only smaller collections calls can fix.
		if err := w.resend(ctx, recs, heavy, results, false); err != nil {
			return nil, whole != "", err
		}
	}
	if whole == "" {
		return results, false, nil
	}
	if len(left) <= 1 {
		return results, true, nil
	}
	mid := (len(left) + 1) / 2
	halvesWhole := false
	for _, half := range [][]int{left[:mid], left[mid:]} {
		sub := make([]Record, len(half))
		for j, i := range half {
			sub[j] = recs[i]
		}
		var res []Result
		var subWhole bool
		if len(sub) <= CollectionsMax {
			res, err = w.collections(ctx, sub)
		} else {
			res, subWhole, err = w.splitJob(ctx, sub, nil)
		}
		if err != nil {
			return nil, true, err
		}
		halvesWhole = halvesWhole || subWhole
		for j, i := range half {
			results[i] = res[j]
		}
	}
	if !halvesWhole {
		w.c.learnBulk(ctx, w.sobject, mid, fmt.Sprintf("a job of %d rows failed as a whole (%s) and its halves did not", len(left), whole))
	}
	return results, true, nil
}

func errorCodeOf(r Result) string {
	if r.Success || len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].StatusCode
}

// bulkJob runs one ingest job for recs, whose CSV is data, and maps its results back onto
// recs. whole is the job's errorMessage when the job failed for a reason SplitOn marks.
func (c *Client) bulkJob(ctx context.Context, sobject, extIDField string, recs []Record, data []byte) (results []Result, whole string, err error) {
	job, err := c.createJob(ctx, sobject, extIDField)
	if err != nil {
		return nil, "", err
	}
	defer c.cleanupJob(ctx, &job)

	if job, err = c.runJob(ctx, job, data); err != nil {
		return nil, "", err
	}
	if results, err = c.jobResults(ctx, job, extIDField, recs); err != nil {
		return nil, "", err
	}
	if job.State == "Failed" && c.splits("", job.ErrorMessage) {
		whole = job.ErrorMessage
	}
	return results, whole, nil
}

func (c *Client) createJob(ctx context.Context, sobject, extIDField string) (jobInfo, error) {
	body, _ := json.Marshal(map[string]string{
		"object":              sobject,
		"externalIdFieldName": extIDField,
		"contentType":         "CSV",
		"operation":           "upsert",
		"lineEnding":          "LF",
		"columnDelimiter":     "COMMA",
	})
	var job jobInfo
	resp, err := c.do(ctx, request{method: "POST", endpoint: "bulk_create", path: "jobs/ingest", body: body})
	if err != nil {
		return job, err
	}
	if err := json.Unmarshal(resp.body, &job); err != nil || job.ID == "" {
		return job, fmt.Errorf("salesforce: bulk %s: decoding the created job (%q): %w", sobject, excerpt(resp.body), err)
	}
	return job, nil
}

// runJob uploads the CSV, closes the job and polls it until it reaches a final state.
func (c *Client) runJob(ctx context.Context, job jobInfo, data []byte) (jobInfo, error) {
	uploadPath := "jobs/ingest/" + job.ID + "/batches"
	if job.ContentURL != "" {
		// contentUrl is relative to the instance ("services/data/vNN.N/jobs/ingest/750…/batches").
		uploadPath = "/" + strings.TrimPrefix(job.ContentURL, "/")
	}
	if _, err := c.do(ctx, request{
		method: "PUT", endpoint: "bulk_upload", path: uploadPath,
		body: data, contentType: "text/csv", finishing: true,
	}); err != nil {
		return job, err
	}
	state, _ := json.Marshal(map[string]string{"state": "UploadComplete"})
	if err := c.jobCall(ctx, "PATCH", "bulk_close", job.ID, state, &job); err != nil {
		return job, err
	}

	deadline := time.Now().Add(c.cfg.BulkTimeout)
	wait := c.cfg.BulkPollInterval
	for !job.final() {
		if time.Now().After(deadline) {
			return job, fmt.Errorf("salesforce: bulk job %s still %s after %s: %w", job.ID, job.State, c.cfg.BulkTimeout, context.DeadlineExceeded)
		}
		if err := sleep(ctx, wait); err != nil {
			return job, err
		}
		wait = min(wait*3/2, c.cfg.BulkPollMax)
		if err := c.jobCall(ctx, "GET", "bulk_poll", job.ID, nil, &job); err != nil {
			return job, err
		}
	}
	return job, nil
}

func (c *Client) jobCall(ctx context.Context, method, endpoint, id string, body []byte, into *jobInfo) error {
	resp, err := c.do(ctx, request{method: method, endpoint: endpoint, path: "jobs/ingest/" + id, body: body, finishing: true})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, into); err != nil {
		return fmt.Errorf("salesforce: decoding bulk job %s: %w", id, err)
	}
	return nil
}

// cleanupJob aborts and deletes a job left unfinished. It runs after the caller may have
// given up, so it gets its own short deadline; failures only leave a job that Salesforce
// deletes by itself after 7 days. A finished job is left for Salesforce to delete: its
// results stay readable for an investigation, and a delete would cost an API call per job.
func (c *Client) cleanupJob(ctx context.Context, job *jobInfo) {
	if job.final() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bulkCleanupTimeout)
	defer cancel()
	abort, _ := json.Marshal(map[string]string{"state": "Aborted"})
	_ = c.jobCall(ctx, "PATCH", "bulk_abort", job.ID, abort, job)
	_, _ = c.do(ctx, request{method: "DELETE", endpoint: "bulk_delete", path: "jobs/ingest/" + job.ID, finishing: true})
}

// jobResults reads the three result sets and maps them back onto recs by external id.
func (c *Client) jobResults(ctx context.Context, job jobInfo, extIDField string, recs []Record) ([]Result, error) {
	// Duplicate external ids share one queue: each result row takes the next record left.
	pending := make(map[string][]int, len(recs))
	for i, r := range recs {
		id := externalID(r, extIDField)
		pending[id] = append(pending[id], i)
	}
	results := make([]Result, len(recs))
	seen := make([]bool, len(recs))
	assign := func(ext string, r Result) {
		q := pending[ext]
		if len(q) == 0 {
			return
		}
		i := q[0]
		pending[ext] = q[1:]
		r.ExternalID = ext
		results[i], seen[i] = r, true
	}

	unprocessed := RecordError{
		StatusCode: CodeBulkUnprocessed,
		Message:    fmt.Sprintf("bulk job %s ended %s before processing this record", job.ID, job.State),
	}
	if job.ErrorMessage != "" {
		unprocessed.Message += ": " + job.ErrorMessage
	}
	for _, set := range []struct {
		path string
		row  func(row map[string]string) Result
	}{
		{"successfulResults/", func(row map[string]string) Result {
			return Result{ID: row["sf__Id"], Success: true, Created: row["sf__Created"] == "true"}
		}},
		{"failedResults/", func(row map[string]string) Result {
			return Result{ID: row["sf__Id"], Errors: []RecordError{parseBulkError(row["sf__Error"])}}
		}},
		{"unprocessedrecords/", func(map[string]string) Result {
			return Result{Errors: []RecordError{unprocessed}}
		}},
	} {
		if !job.needs(set.path, len(recs)) {
			continue
		}
		resp, err := c.do(ctx, request{
			method: "GET", endpoint: "bulk_results", path: "jobs/ingest/" + job.ID + "/" + set.path,
			accept: "text/csv", finishing: true,
		})
		if err != nil {
			return nil, err
		}
		if err := eachCSVRow(resp.body, extIDField, func(ext string, row map[string]string) {
			assign(ext, set.row(row))
		}); err != nil {
			return nil, fmt.Errorf("salesforce: bulk job %s %s: %w", job.ID, set.path, err)
		}
	}
	for i := range results {
		if !seen[i] {
			results[i] = Result{
				ExternalID: externalID(recs[i], extIDField),
				Errors: []RecordError{{
					StatusCode: CodeBulkNoResult,
					Message:    fmt.Sprintf("bulk job %s (%s) reported no result for this record", job.ID, job.State),
				}},
			}
		}
	}
	return results, nil
}

// parseBulkError splits sf__Error, which real orgs write as "CODE:message:fields", e.g.
// "DUPLICATE_VALUE:duplicate value found: …:--" ([UNCONFIRMED] as a documented format).
// Text without a code prefix is kept whole under the code BULK_ERROR.
func parseBulkError(s string) RecordError {
	code, msg, ok := strings.Cut(s, ":")
	if !ok || code == "" || strings.ToUpper(code) != code || strings.ContainsAny(code, " \t") {
		return RecordError{StatusCode: "BULK_ERROR", Message: s}
	}
	return RecordError{StatusCode: code, Message: strings.TrimSuffix(msg, ":--")}
}

// eachCSVRow walks a result CSV, handing fn each row keyed by header along with its
// external id.
func eachCSVRow(data []byte, extIDField string, fn func(ext string, row map[string]string)) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("reading the header: %w", err)
	}
	header = slices.Clone(header)
	extCol := slices.Index(header, extIDField)
	if extCol < 0 {
		extCol = slices.IndexFunc(header, func(h string) bool { return strings.EqualFold(h, extIDField) })
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// Checked per row: a job that failed before reading its upload answers with a
		// header of result columns only and no rows, which is fine.
		if extCol < 0 {
			return fmt.Errorf("no %s column in %q", extIDField, header)
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			row[h] = rec[i]
		}
		fn(rec[extCol], row)
	}
}

// bulkNull is how a Bulk API CSV cell sets a field to null.
const bulkNull = "#N/A"

// column is one CSV column: a field, or with ref set, a parent's field through the
// relationship ("Rel__r.Ext__c").
type column struct {
	field, ref string
}

func (col column) header() string {
	if col.ref == "" {
		return col.field
	}
	return col.field + "." + col.ref
}

// buildCSV writes recs as a Bulk API 2.0 upload: the external id column first, then every
// other key any record has, sorted; nested parent references become "Rel__r.Field" columns.
func buildCSV(extIDField string, recs []Record) ([]byte, error) {
	fields := map[string]bool{}          // plain fields
	refs := map[string]map[string]bool{} // relationship → parent fields
	for _, r := range recs {
		for k, v := range r {
			if k == "attributes" {
				continue
			}
			parent, isRef, err := asReference(k, v)
			if err != nil {
				return nil, err
			}
			if !isRef {
				fields[k] = true
				continue
			}
			if refs[k] == nil {
				refs[k] = map[string]bool{}
			}
			for pk := range parent {
				refs[k][pk] = true
			}
		}
	}
	for k := range refs {
		if fields[k] {
			return nil, fmt.Errorf("field %q is a parent reference in some records and a value in others", k)
		}
	}
	delete(fields, extIDField)
	cols := []column{{field: extIDField}}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		cols = append(cols, column{field: k})
	}
	for _, k := range slices.Sorted(maps.Keys(refs)) {
		for _, pk := range slices.Sorted(maps.Keys(refs[k])) {
			cols = append(cols, column{field: k, ref: pk})
		}
	}

	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	row := make([]string, len(cols))
	for i, col := range cols {
		row[i] = col.header()
	}
	if err := w.Write(row); err != nil {
		return nil, err
	}
	for n, r := range recs {
		for i, col := range cols {
			cell, err := csvCell(r, col)
			if err != nil {
				return nil, fmt.Errorf("record %d, column %s: %w", n, col.header(), err)
			}
			row[i] = cell
		}
		if err := w.Write(row); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// asReference tells a nested parent reference from a plain value.
func asReference(key string, v any) (map[string]any, bool, error) {
	switch m := v.(type) {
	case map[string]any:
		return m, true, nil
	case Record:
		return m, true, nil
	case nil:
		if strings.HasSuffix(key, "__r") {
			return nil, false, fmt.Errorf("field %q: a nil parent reference cannot be written in CSV; set the lookup field (…__c) to nil instead", key)
		}
	}
	return nil, false, nil
}

func csvCell(r Record, col column) (string, error) {
	v, ok := r[col.field]
	if ok && col.ref != "" {
		parent, _, _ := asReference(col.field, v)
		v, ok = parent[col.ref]
	}
	switch {
	case !ok:
		return "", nil
	case v == nil:
		return bulkNull, nil
	}
	return cellValue(v)
}
