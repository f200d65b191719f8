package salesforcesim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
)

// bulkBatchSize is the size of the internal batches Bulk API 2.0 splits a job into.
const bulkBatchSize = 10000

// Bulk API 2.0 ingest job states.
const (
	stateOpen           = "Open"
	stateUploadComplete = "UploadComplete"
	stateInProgress     = "InProgress"
	stateJobComplete    = "JobComplete"
	stateFailed         = "Failed"
	stateAborted        = "Aborted"
)

var columnDelimiters = map[string]rune{
	"COMMA": ',', "TAB": '\t', "PIPE": '|', "SEMICOLON": ';', "CARET": '^', "BACKQUOTE": '`',
}

type bulkJob struct {
	info   jobInfo
	table  *table
	header []string
	// data are the uploads that parsed, as sent. A job keeps its CSV rather than its parsed
	// cells, which cost about twice as much, because finished jobs stay with their results
	// until deleted; processing and the result files read it again.
	data     []string
	uploads  int
	parseErr error
	done     []bool // per internal batch: processed
	success  []jobResult
	failed   []jobResult
	cancel   context.CancelFunc
}

// jobResult is one processed record: its position in the job's rows, and its Id or error.
type jobResult struct {
	row     int
	id      string
	created bool
	err     string // "CODE:message" for a failed record
}

// readCSV parses one upload with the job's column delimiter.
func (j *bulkJob) readCSV(data string) ([][]string, error) {
	rd := csv.NewReader(strings.NewReader(data))
	rd.Comma = columnDelimiters[j.info.ColumnDelimiter]
	rd.FieldsPerRecord = 0
	return rd.ReadAll()
}

// rows reads the data rows of every upload, in order.
func (j *bulkJob) rows() [][]string {
	var rows [][]string
	for _, data := range j.data {
		all, _ := j.readCSV(data) // it parsed when it was uploaded
		rows = append(rows, all[1:]...)
	}
	return rows
}

// jobInfo is the job-info JSON every job endpoint answers with.
type jobInfo struct {
	ID                      string  `json:"id"`
	Operation               string  `json:"operation"`
	Object                  string  `json:"object"`
	CreatedByID             string  `json:"createdById"`
	CreatedDate             string  `json:"createdDate"`
	SystemModstamp          string  `json:"systemModstamp"`
	State                   string  `json:"state"`
	ExternalIDFieldName     string  `json:"externalIdFieldName,omitempty"`
	ConcurrencyMode         string  `json:"concurrencyMode"`
	ContentType             string  `json:"contentType"`
	APIVersion              float64 `json:"apiVersion"`
	JobType                 string  `json:"jobType"`
	ContentURL              string  `json:"contentUrl"`
	LineEnding              string  `json:"lineEnding"`
	ColumnDelimiter         string  `json:"columnDelimiter"`
	NumberRecordsProcessed  int     `json:"numberRecordsProcessed"`
	NumberRecordsFailed     int     `json:"numberRecordsFailed"`
	Retries                 int     `json:"retries"`
	TotalProcessingTime     int64   `json:"totalProcessingTime"`
	APIActiveProcessingTime int64   `json:"apiActiveProcessingTime"`
	ApexProcessingTime      int64   `json:"apexProcessingTime"`
	ErrorMessage            string  `json:"errorMessage,omitempty"`
}

// jobError answers a job request Salesforce would refuse. The error codes for job requests
// (INVALIDJOB, INVALIDJOBSTATE) are UNCONFIRMED: the reference has no sample bodies.
func jobError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeAPIError(w, status, code, fmt.Sprintf(format, args...))
}

func (s *Sim) handleCreateJob(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Object              string `json:"object"`
		Operation           string `json:"operation"`
		ExternalIDFieldName string `json:"externalIdFieldName"`
		ContentType         string `json:"contentType"`
		LineEnding          string `json:"lineEnding"`
		ColumnDelimiter     string `json:"columnDelimiter"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	req.ContentType = cmp.Or(req.ContentType, "CSV")
	req.LineEnding = cmp.Or(req.LineEnding, "LF")
	req.ColumnDelimiter = cmp.Or(req.ColumnDelimiter, "COMMA")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table(req.Object)
	switch {
	case t == nil:
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : Invalid object type: %s", req.Object)
		return
	case req.Operation != "insert" && req.Operation != "upsert" && req.Operation != "update":
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : operation %q is not supported (insert, upsert, update)", req.Operation)
		return
	case req.ContentType != "CSV":
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : contentType must be CSV")
		return
	case req.LineEnding != "LF" && req.LineEnding != "CRLF":
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : lineEnding must be LF or CRLF")
		return
	case columnDelimiters[req.ColumnDelimiter] == 0:
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : unknown columnDelimiter %s", req.ColumnDelimiter)
		return
	}
	ext := ""
	if req.Operation == "upsert" {
		f := t.obj.field(req.ExternalIDFieldName)
		if f == nil || !f.ExternalID && f.Type != TypeID {
			jobError(w, http.StatusBadRequest, "INVALIDJOB",
				"InvalidJob : externalIdFieldName %q is not an external id field of %s", req.ExternalIDFieldName, t.obj.Name)
			return
		}
		ext = f.Name
	}
	version := r.PathValue("version")
	apiVersion, _ := strconv.ParseFloat(strings.TrimPrefix(version, "v"), 64)
	s.jobSeq++
	now := formatDateTime(s.now())
	job := &bulkJob{table: t, info: jobInfo{
		ID: newID("750", s.jobSeq), Operation: req.Operation, Object: t.obj.Name, CreatedByID: s.cfg.UserID,
		CreatedDate: now, SystemModstamp: now, State: stateOpen, ExternalIDFieldName: ext,
		ConcurrencyMode: "Parallel", ContentType: "CSV", APIVersion: apiVersion, JobType: "V2Ingest",
		LineEnding: req.LineEnding, ColumnDelimiter: req.ColumnDelimiter,
	}}
	job.info.ContentURL = "services/data/" + version + "/jobs/ingest/" + job.info.ID + "/batches"
	s.jobs[job.info.ID] = job
	// UNCONFIRMED whether Salesforce answers 200 or 201 here.
	writeJSON(w, http.StatusOK, job.info)
}

// job finds the job named in the path or answers 404; the caller holds s.mu.
func (s *Sim) job(w http.ResponseWriter, r *http.Request) *bulkJob {
	j := s.jobs[r.PathValue("id")]
	if j == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
	return j
}

func (s *Sim) handleListJobs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	records := make([]jobInfo, 0, len(s.jobs))
	for _, j := range s.jobs {
		records = append(records, j.info)
	}
	s.mu.Unlock()
	slices.SortFunc(records, func(a, b jobInfo) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"done": true, "records": records, "nextRecordsUrl": nil})
}

func (s *Sim) handleGetJob(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.job(w, r); j != nil {
		writeJSON(w, http.StatusOK, j.info)
	}
}

func (s *Sim) handleUpload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "reading the upload: %v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(w, r)
	switch {
	case j == nil:
		return
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv"):
		jobError(w, http.StatusBadRequest, "INVALIDJOB", "InvalidJob : upload data with Content-Type text/csv")
		return
	case j.info.State != stateOpen:
		jobError(w, http.StatusBadRequest, "INVALIDJOBSTATE", "Job's state %s does not allow uploads", j.info.State)
		return
	case j.uploads > 0 && !s.cfg.BulkMultipleUploads:
		jobError(w, http.StatusBadRequest, "INVALIDJOBSTATE", "Job %s already has data; upload once per job", j.info.ID)
		return
	}
	j.uploads++
	data := string(body)
	all, err := j.readCSV(data)
	switch {
	case err != nil:
		j.parseErr = fmt.Errorf("InvalidBatch : Failed to parse CSV: %w", err)
	case len(all) == 0:
		j.parseErr = errors.New("InvalidBatch : No CSV header row")
	case j.header != nil && !slices.Equal(j.header, all[0]):
		j.parseErr = errors.New("InvalidBatch : Every upload of a job must have the same header")
	default:
		j.header = all[0]
		j.data = append(j.data, data)
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Sim) handlePatchJob(w http.ResponseWriter, r *http.Request) {
	var req struct {
		State string `json:"state"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(w, r)
	if j == nil {
		return
	}
	switch {
	case req.State == stateUploadComplete && j.info.State == stateOpen:
		j.info.State = stateUploadComplete
		ctx, cancel := context.WithCancel(s.ctx)
		j.cancel = cancel
		s.bulkWG.Add(1)
		go s.process(ctx, j)
	case req.State == stateAborted && slices.Contains([]string{stateOpen, stateUploadComplete, stateInProgress}, j.info.State):
		j.info.State = stateAborted
		if j.cancel != nil {
			j.cancel()
		}
	default:
		jobError(w, http.StatusBadRequest, "INVALIDJOBSTATE", "Invalid state transition from %s to %s", j.info.State, req.State)
		return
	}
	j.info.SystemModstamp = formatDateTime(s.now())
	writeJSON(w, http.StatusOK, j.info)
}

func (s *Sim) handleDeleteJob(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.job(w, r)
	switch {
	case j == nil:
		return
	case j.info.State == stateUploadComplete || j.info.State == stateInProgress:
		jobError(w, http.StatusBadRequest, "INVALIDJOBSTATE", "Job %s is %s; abort it before deleting", j.info.ID, j.info.State)
		return
	}
	delete(s.jobs, j.info.ID)
	w.WriteHeader(http.StatusNoContent)
}

// process runs a closed job in internal batches of 10,000 records, each taking
// BulkBatchDelay, until done, aborted or the simulator closes. Under ProfileLocks the batches
// run in parallel, as the platform runs them (Bulk API 2.0 has no serial mode), so batches
// writing children of one parent meet each other's locks (reference/salesforce.md §8.5).
func (s *Sim) process(ctx context.Context, j *bulkJob) {
	defer s.bulkWG.Done()
	start := time.Now()
	s.mu.Lock()
	if j.info.State != stateUploadComplete {
		s.mu.Unlock()
		return
	}
	j.info.State = stateInProgress
	columns, err := s.columns(j)
	if err == nil {
		err = j.parseErr
	}
	if err != nil {
		j.info.State, j.info.ErrorMessage = stateFailed, err.Error()
		s.mu.Unlock()
		return
	}
	rows := j.rows()
	j.done = make([]bool, (len(rows)+bulkBatchSize-1)/bulkBatchSize)
	parallel := s.has(ProfileLocks)
	s.mu.Unlock()

	var wg sync.WaitGroup
	for b := range j.done {
		if !parallel {
			if !s.runBatch(ctx, j, columns, rows, b, start) {
				return
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runBatch(ctx, j, columns, rows, b, start)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.info.State == stateInProgress && !slices.Contains(j.done, false) {
		j.info.State = stateJobComplete
	}
}

// runBatch processes internal batch b of a job as one transaction, its records passing
// through triggers bulkTransactionRecords at a time; it reports false when the job was
// aborted or the simulator closed first.
func (s *Sim) runBatch(ctx context.Context, j *bulkJob, columns []column, rows [][]string, b int, start time.Time) bool {
	if clock.Sleep(ctx, s.cfg.BulkBatchDelay) != nil {
		return false // aborted, or the simulator closed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.info.State != stateInProgress {
		return false
	}
	lo, hi := b*bulkBatchSize, min((b+1)*bulkBatchSize, len(rows))
	txn := s.nextSeq()
	for c := lo; c < hi; c += bulkTransactionRecords {
		chunk := rows[c:min(c+bulkTransactionRecords, hi)]
		ops := make([]writeOp, len(chunk))
		for i, cells := range chunk {
			ops[i] = j.op(columns, cells)
		}
		for i, res := range s.writeBatch(txn, ops, false) {
			if res.ok() {
				j.success = append(j.success, jobResult{row: c + i, id: res.id, created: res.created})
				continue
			}
			e := res.errors[0]
			// sf__Error as "CODE:message"; real orgs may append ":fields--" (UNCONFIRMED).
			j.failed = append(j.failed, jobResult{row: c + i, id: res.id, err: e.StatusCode + ":" + e.Message})
			j.info.NumberRecordsFailed++
		}
	}
	j.done[b] = true
	j.info.NumberRecordsProcessed += hi - lo
	j.info.TotalProcessingTime = time.Since(start).Milliseconds()
	j.info.APIActiveProcessingTime = j.info.TotalProcessingTime
	j.info.SystemModstamp = formatDateTime(s.now())
	if hi > lo {
		s.batches++
	}
	s.holdLocks(ctx, txn)
	return true
}

// column is one CSV header entry resolved against the job's object.
type column struct {
	field  *Field
	parent *parentRef // set for "Relationship__r.ExtField" columns; value filled per row
	isID   bool
}

// columns resolves the header; an unknown column fails the whole job, as in Bulk API 2.0.
func (s *Sim) columns(j *bulkJob) ([]column, error) {
	obj := j.table.obj
	cols := make([]column, len(j.header))
	hasKey := false
	for i, name := range j.header {
		rel, fieldName, isRel := strings.Cut(name, ".")
		if !isRel {
			f := obj.field(name)
			if f == nil {
				return nil, fmt.Errorf("InvalidBatch : Field name not found : %s", name)
			}
			cols[i] = column{field: f, isID: f.Type == TypeID}
			hasKey = hasKey || strings.EqualFold(f.Name, cmp.Or(j.info.ExternalIDFieldName, "Id"))
			continue
		}
		f := obj.relationship(rel)
		if f == nil {
			return nil, fmt.Errorf("InvalidBatch : Field name not found : %s", name)
		}
		parent := s.table(f.ReferenceTo[0])
		pf := parent.obj.field(fieldName)
		if pf == nil || !pf.ExternalID && !pf.IDLookup {
			return nil, fmt.Errorf("InvalidBatch : Field name not found : %s", name)
		}
		cols[i] = column{field: f, parent: &parentRef{table: parent, field: pf}}
	}
	if j.info.Operation != "insert" && !hasKey {
		return nil, fmt.Errorf("InvalidBatch : Field name not found : %s", cmp.Or(j.info.ExternalIDFieldName, "Id"))
	}
	return cols, nil
}

// op turns one CSV row into a write: an empty cell leaves its field unchanged and #N/A
// clears it, as Bulk API 2.0 reads CSV.
func (j *bulkJob) op(columns []column, cells []string) writeOp {
	op := writeOp{table: j.table, mode: modeUpsert}
	switch j.info.Operation {
	case "insert":
		op.mode = modeInsert
	case "update":
		op.mode = modeUpdate
	default:
		op.key = j.table.obj.field(j.info.ExternalIDFieldName)
	}
	for i, c := range columns {
		if i >= len(cells) || cells[i] == "" {
			continue
		}
		cell := cells[i]
		if c.isID && op.mode == modeUpdate {
			op.keyValue = cell
			continue
		}
		if c.parent != nil {
			ch := change{field: c.field}
			if cell != "#N/A" {
				ch.parent = &parentRef{table: c.parent.table, field: c.parent.field, value: cell}
			}
			op.changes = append(op.changes, ch)
			continue
		}
		if c.field.Type.textual() {
			cell = strings.Clone(cell) // a stored text would pin the whole CSV line it was cut from
		}
		var raw any = cell
		if cell == "#N/A" {
			raw = nil
		}
		v, err := convert(c.field, raw)
		if err != nil && op.failed == nil {
			e := newRecordErr("INVALID_TYPE_ON_FIELD_IN_RECORD", err.Error(), c.field.Name)
			op.failed = &e
		}
		if c.field == op.key {
			op.keyValue, _ = v.(string)
		}
		op.changes = append(op.changes, change{field: c.field, value: v})
	}
	return op
}

type resultsKind int

const (
	resultsSuccessful resultsKind = iota
	resultsFailed
	resultsUnprocessed
)

// handleJobResults answers one of the three result CSVs: sf__Id and sf__Created (or
// sf__Error) before the original columns, or the original rows never processed.
func (s *Sim) handleJobResults(kind resultsKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.job(w, r)
		if j == nil {
			return
		}
		var b bytes.Buffer
		rows := j.rows()
		switch kind {
		case resultsSuccessful:
			writeCSVRow(&b, append([]string{"sf__Id", "sf__Created"}, j.header...))
			for _, res := range j.success {
				writeCSVRow(&b, append([]string{res.id, strconv.FormatBool(res.created)}, rows[res.row]...))
			}
		case resultsFailed:
			writeCSVRow(&b, append([]string{"sf__Id", "sf__Error"}, j.header...))
			for _, res := range j.failed {
				writeCSVRow(&b, append([]string{res.id, res.err}, rows[res.row]...))
			}
		case resultsUnprocessed:
			writeCSVRow(&b, j.header)
			if j.info.State == stateAborted || j.info.State == stateFailed {
				for i, cells := range rows {
					if len(j.done) == 0 || !j.done[i/bulkBatchSize] {
						writeCSVRow(&b, cells)
					}
				}
			}
		}
		w.Header().Set("Content-Type", "text/csv")
		w.WriteHeader(http.StatusOK)
		w.Write(b.Bytes()) //nolint:errcheck // the client hung up; nothing to do
	}
}

// writeCSVRow writes one row with every field quoted, as the result files are.
func writeCSVRow(b *bytes.Buffer, cells []string) {
	for i, c := range cells {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(c, `"`, `""`))
		b.WriteByte('"')
	}
	b.WriteByte('\n')
}
