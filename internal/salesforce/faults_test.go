package salesforce_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// orgFaults stands between the client and a simulated org and makes the org behave as real
// ones do where the simulator does not (reference/salesforce.md §8): customer automation
// that fails whole calls, parent locks held by parallel writes, the concurrent-request
// limit and external ids that match several records. Every answer it makes up has the
// platform's documented shape: whole-request failures are a top-level JSON array of
// {message, errorCode} (§2.1, §4.1), record failures are items of the collections answer
// with statusCode, message and fields (§2.1), and bulk results are CSVs whose sf__Error
// reads "CODE:message" (§3.5). Configure it before the first request.
type orgFaults struct {
	t     testing.TB
	sim   *salesforcesim.Sim
	proxy *httputil.ReverseProxy
	url   string

	// cpuLimit makes a collections call of more records fail whole with the Apex CPU limit,
	// as a trigger's work grows with the chunk (§8.4). 0 turns it off.
	cpuLimit int
	// poison are external ids whose trigger throws: any call carrying one fails whole
	// with APEX_ERROR, as an unhandled exception rolls back the transaction (§8.4).
	poison map[string]bool
	// bulkCPULimit makes a Bulk API job of more rows fail; with bulkRowErrors the job
	// completes with every row failed on the CPU limit instead (§8.4, §3.5). 0 turns it off.
	bulkCPULimit  int
	bulkRowErrors bool
	// lockHold is how long a collections call holds its records' parents locked (the
	// trigger's work); a call finding a parent locked waits up to lockWait for it, then
	// its records under that parent fail with UNABLE_TO_LOCK_ROW (§4.2: a transaction waits
	// at most 10 s; §8.5: children written in parallel collide on their parent).
	lockHold, lockWait time.Duration
	// concurrent is how many data requests may run at once; beyond it the org answers 403
	// REQUEST_LIMIT_EXCEEDED ConcurrentRequests (§4.2, §8.6). Each data request then takes
	// at least hold (which setHold may change later). 0 turns it off.
	concurrent int
	hold       time.Duration
	// dupes maps an external id to the records it matches: an upsert of it fails with
	// DUPLICATE_EXTERNAL_ID and the matching ids in the message (§8.7; the wording follows
	// a third-party listing: "more than one record found for external id field: [ids]").
	dupes map[string][]string
	// dupesQuiet leaves the ids out of that message; a query for the external id then
	// answers with the matching records (§4.5), as the org holding them would.
	dupesQuiet bool

	mu          sync.Mutex
	parents     map[string]chan struct{}
	inflight    int
	maxInflight int
	refused     int
	wholeFailed int
	lockErrors  int
	jobs        map[string]*faultJob
	openJobs    int
	maxOpenJobs int
}

// faultJob is what orgFaults keeps of a bulk job it makes fail.
type faultJob struct {
	upload []byte
	rows   int
	doomed bool
	open   bool
}

func newOrgFaults(t testing.TB, sim *salesforcesim.Sim) *orgFaults {
	target, err := url.Parse(sim.InstanceURL())
	if err != nil {
		t.Fatal(err)
	}
	f := &orgFaults{t: t, sim: sim, proxy: httputil.NewSingleHostReverseProxy(target),
		parents: map[string]chan struct{}{}, jobs: map[string]*faultJob{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

var (
	collectionsPath = regexp.MustCompile(`^/services/data/v[\d.]+/composite/sobjects/[^/]+/[^/]+$`)
	jobPath         = regexp.MustCompile(`^/services/data/v[\d.]+/jobs/ingest/([^/]+)(/[A-Za-z]+)?/?$`)
)

func (f *orgFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.concurrent > 0 && strings.HasPrefix(r.URL.Path, "/services/data/v") {
		f.mu.Lock()
		f.inflight++
		over, hold := f.inflight > f.concurrent, f.hold
		if over {
			f.refused++
		} else {
			f.maxInflight = max(f.maxInflight, f.inflight)
		}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.inflight--
			f.mu.Unlock()
		}()
		if over {
			// The message the reference quotes for the long-running request limit (§4.2).
			writeErrors(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded.")
			return
		}
		time.Sleep(hold)
	}
	switch m := jobPath.FindStringSubmatch(r.URL.Path); {
	case r.Method == http.MethodPatch && collectionsPath.MatchString(r.URL.Path):
		f.collections(w, r)
	case m != nil:
		f.job(w, r, m[1], m[2])
	case strings.HasSuffix(r.URL.Path, "/query") && f.duplicateQuery(w, r):
	default:
		f.proxy.ServeHTTP(w, r)
	}
}

func writeErrors(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode([]map[string]string{{"message": message, "errorCode": code}}) //nolint:errcheck
}

type collectionBody struct {
	AllOrNone bool             `json:"allOrNone"`
	Records   []map[string]any `json:"records"`
}

type itemResult struct {
	ID      *string          `json:"id"`
	Success bool             `json:"success"`
	Created bool             `json:"created"`
	Errors  []map[string]any `json:"errors"`
}

func failedItem(code, message string, fields ...string) itemResult {
	return itemResult{Errors: []map[string]any{{"statusCode": code, "message": message, "fields": append([]string{}, fields...)}}}
}

// collections answers one collections upsert: whole failures first, then per-record
// duplicates and locks; the records left go to the simulator and the answers are merged
// back in order.
func (f *orgFaults) collections(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var body collectionBody
	if err := json.Unmarshal(data, &body); err != nil {
		f.forward(w, r, data)
		return
	}
	extField := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	ext := func(rec map[string]any) string { s, _ := rec[extField].(string); return s }
	for _, rec := range body.Records {
		if f.poison[ext(rec)] {
			f.count(&f.wholeFailed)
			writeErrors(w, http.StatusBadRequest, "APEX_ERROR",
				"skilljarProgressTrigger: execution of AfterInsert caused by: System.NullPointerException: Attempt to de-reference a null object")
			return
		}
	}
	if f.cpuLimit > 0 && len(body.Records) > f.cpuLimit {
		f.count(&f.wholeFailed)
		writeErrors(w, http.StatusInternalServerError, "APEX_ERROR", "System.LimitException: Apex CPU time limit exceeded")
		return
	}

	results := make([]*itemResult, len(body.Records))
	for i, rec := range body.Records {
		if ids := f.dupes[ext(rec)]; len(ids) > 0 {
			msg := fmt.Sprintf("%s: more than one record found for external id field: [%s]", extField, strings.Join(ids, ", "))
			if f.dupesQuiet {
				msg = extField + ": more than one record found for external id field"
			}
			res := failedItem("DUPLICATE_EXTERNAL_ID", msg, extField)
			results[i] = &res
		}
	}
	release := f.lockParents(body.Records, results)
	defer release()

	var send []map[string]any
	var at []int
	for i, rec := range body.Records {
		if results[i] == nil {
			send, at = append(send, rec), append(at, i)
		}
	}
	if len(send) > 0 {
		fwd, _ := json.Marshal(collectionBody{AllOrNone: body.AllOrNone, Records: send})
		rec := httptest.NewRecorder()
		f.forward(rec, r, fwd)
		if rec.Code != http.StatusOK {
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()) //nolint:errcheck
			return
		}
		var got []itemResult
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != len(send) {
			f.t.Errorf("orgFaults: simulator answered %q", rec.Body.String())
			return
		}
		for j, i := range at {
			results[i] = &got[j]
		}
	}
	time.Sleep(f.lockHold) // the trigger's work, with the parents locked
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(results) //nolint:errcheck
}

// duplicateQuery answers a query for the records of a duplicated external id, and reports
// whether it did.
func (f *orgFaults) duplicateQuery(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query().Get("q")
	for ext, ids := range f.dupes {
		if !strings.HasPrefix(q, "SELECT Id FROM ") || !strings.HasSuffix(q, " = '"+ext+"'") {
			continue
		}
		recs := make([]map[string]any, len(ids))
		for i, id := range ids {
			recs[i] = map[string]any{"attributes": map[string]string{"type": "sObject"}, "Id": id}
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		json.NewEncoder(w).Encode(map[string]any{"totalSize": len(ids), "done": true, "records": recs}) //nolint:errcheck
		return true
	}
	return false
}

// lockParents takes the lock of every parent the records refer to, waiting up to lockWait
// for each; records whose parent stayed locked get UNABLE_TO_LOCK_ROW. It returns what
// releases the locks taken.
func (f *orgFaults) lockParents(recs []map[string]any, results []*itemResult) func() {
	if f.lockHold <= 0 {
		return func() {}
	}
	byParent := map[string][]int{}
	for i, rec := range recs {
		if results[i] != nil {
			continue
		}
		for k, v := range rec {
			if ref, ok := v.(map[string]any); ok && k != "attributes" {
				for pk, pv := range ref {
					key := fmt.Sprintf("%s.%s=%v", k, pk, pv)
					byParent[key] = append(byParent[key], i)
				}
			}
		}
	}
	var held []chan struct{}
	for _, key := range slices.Sorted(maps.Keys(byParent)) {
		f.mu.Lock()
		lock := f.parents[key]
		if lock == nil {
			lock = make(chan struct{}, 1)
			f.parents[key] = lock
		}
		f.mu.Unlock()
		if f.tryLock(lock, f.lockWait) {
			held = append(held, lock)
		} else {
			for _, i := range byParent[key] {
				if results[i] == nil {
					res := failedItem("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "+key)
					results[i] = &res
					f.count(&f.lockErrors)
				}
			}
		}
	}
	return func() {
		for _, lock := range held {
			<-lock
		}
	}
}

// tryLock takes lock, waiting up to wait; a free lock is always taken, however late the
// goroutine runs.
func (f *orgFaults) tryLock(lock chan struct{}, wait time.Duration) bool {
	select {
	case lock <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case lock <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (f *orgFaults) setHold(d time.Duration) {
	f.mu.Lock()
	f.hold = d
	f.mu.Unlock()
}

func (f *orgFaults) count(n *int) {
	f.mu.Lock()
	*n++
	f.mu.Unlock()
}

// forward sends r with body to the simulator.
func (f *orgFaults) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	f.proxy.ServeHTTP(w, r)
}

// job handles the bulk job calls: it notes each upload, aborts a job over bulkCPULimit
// at the simulator instead of closing it, and then reports it as Salesforce reports a job
// whose batches failed: state Failed with the error in errorMessage (§3.4), or with
// bulkRowErrors, complete with every row in failedResults (§3.5).
func (f *orgFaults) job(w http.ResponseWriter, r *http.Request, id, sub string) {
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	j := f.jobs[id]
	if j == nil {
		j = &faultJob{}
		f.jobs[id] = j
	}
	f.mu.Unlock()
	const cpuError = "System.LimitException: Apex CPU time limit exceeded"
	switch {
	case r.Method == http.MethodPut && sub == "/batches":
		rows, _ := csv.NewReader(bytes.NewReader(data)).ReadAll()
		f.mu.Lock()
		j.upload, j.rows = data, len(rows)-1
		j.doomed = f.bulkCPULimit > 0 && j.rows > f.bulkCPULimit
		f.mu.Unlock()
		f.forward(w, r, data)
	case r.Method == http.MethodPatch && sub == "" && bytes.Contains(data, []byte("UploadComplete")):
		f.mu.Lock()
		j.open = true
		f.openJobs++
		f.maxOpenJobs = max(f.maxOpenJobs, f.openJobs)
		doomed := j.doomed
		f.mu.Unlock()
		if doomed {
			f.count(&f.wholeFailed)
			data = []byte(`{"state":"Aborted"}`)
		}
		f.rewriteJob(w, r, data, j)
	case r.Method == http.MethodGet && sub == "":
		f.rewriteJob(w, r, data, j)
	case r.Method == http.MethodGet && j.doomed && f.bulkRowErrors && sub != "/unprocessedrecords":
		rows, _ := csv.NewReader(bytes.NewReader(j.upload)).ReadAll()
		var b bytes.Buffer
		cw := csv.NewWriter(&b)
		if sub == "/failedResults" {
			cw.Write(append([]string{"sf__Id", "sf__Error"}, rows[0]...)) //nolint:errcheck
			for _, row := range rows[1:] {
				cw.Write(append([]string{"", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY:skilljarProgressTrigger: " + cpuError + ":--"}, row...)) //nolint:errcheck
			}
		} else {
			cw.Write(append([]string{"sf__Id", "sf__Created"}, rows[0]...)) //nolint:errcheck
		}
		cw.Flush()
		w.Header().Set("Content-Type", "text/csv")
		w.Write(b.Bytes()) //nolint:errcheck
	case r.Method == http.MethodGet && j.doomed && f.bulkRowErrors:
		w.Header().Set("Content-Type", "text/csv")
		rows, _ := csv.NewReader(bytes.NewReader(j.upload)).ReadAll()
		io.WriteString(w, strings.Join(rows[0], ",")+"\n") //nolint:errcheck
	default:
		f.forward(w, r, data)
	}
}

// rewriteJob forwards a job-info call and, for a doomed job, reports the failure.
func (f *orgFaults) rewriteJob(w http.ResponseWriter, r *http.Request, body []byte, j *faultJob) {
	rec := httptest.NewRecorder()
	f.forward(rec, r, body)
	var info map[string]any
	if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &info) == nil {
		f.mu.Lock()
		if j.doomed {
			if f.bulkRowErrors {
				info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"] = "JobComplete", j.rows, j.rows
			} else {
				info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"] = "Failed", 0, 0
				info["errorMessage"] = "InternalServerError : System.LimitException: Apex CPU time limit exceeded"
			}
		}
		switch info["state"] {
		case "JobComplete", "Failed", "Aborted":
			if j.open {
				j.open = false
				f.openJobs--
			}
		}
		f.mu.Unlock()
		out, _ := json.Marshal(info)
		rec.Body = bytes.NewBuffer(out)
		rec.Header().Del("Content-Length")
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes()) //nolint:errcheck
}

// stats returns the counters under the lock.
func (f *orgFaults) stats() (wholeFailed, lockErrors, refused, maxInflight, maxOpenJobs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wholeFailed, f.lockErrors, f.refused, f.maxInflight, f.maxOpenJobs
}
