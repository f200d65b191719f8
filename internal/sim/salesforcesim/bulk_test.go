package salesforcesim

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func (c *client) createJob(body map[string]any) jobInfo {
	c.t.Helper()
	r := c.do("POST", "jobs/ingest", body)
	if r.status != http.StatusOK {
		c.t.Fatalf("create job = %d %s", r.status, r.body)
	}
	var info jobInfo
	r.json(c.t, &info)
	return info
}

func (c *client) job(id string) jobInfo {
	c.t.Helper()
	var info jobInfo
	c.do("GET", "jobs/ingest/"+id, nil).json(c.t, &info)
	return info
}

// waitJob polls until the job reaches a terminal state, recording every state seen.
func (c *client) waitJob(id string) (jobInfo, []string) {
	c.t.Helper()
	var seen []string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info := c.job(id)
		if len(seen) == 0 || seen[len(seen)-1] != info.State {
			seen = append(seen, info.State)
		}
		switch info.State {
		case stateJobComplete, stateFailed, stateAborted:
			return info, seen
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("job %s did not finish; states %v", id, seen)
	return jobInfo{}, nil
}

func (c *client) results(id, kind string) [][]string {
	c.t.Helper()
	r := c.do("GET", "jobs/ingest/"+id+"/"+kind+"/", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		c.t.Fatalf("%s = %d %q %s", kind, r.status, r.header.Get("Content-Type"), r.body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		c.t.Fatalf("%s is not CSV: %v\n%s", kind, err, r.body)
	}
	return rows
}

func upsertJob(object string) map[string]any {
	return map[string]any{"object": object, "operation": "upsert", "externalIdFieldName": ObfuscatedID,
		"contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"}
}

func TestBulkUpsertRunsThroughItsStatesInBatchesOf10000(t *testing.T) {
	s := startSim(t, Config{BulkBatchDelay: 20 * time.Millisecond})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("stu-0"))

	info := c.createJob(upsertJob(objProgress))
	if !strings.HasPrefix(info.ID, "750") || info.State != stateOpen || info.ContentURL != "services/data/"+testVersion+"/jobs/ingest/"+info.ID+"/batches" ||
		info.ExternalIDFieldName != ObfuscatedID || info.JobType != "V2Ingest" || info.APIVersion != 62 {
		t.Fatalf("job info = %+v", info)
	}
	var b strings.Builder
	b.WriteString("skilljar__Obfuscated_Id__c,skilljar__Student__r.skilljar__Obfuscated_Id__c,skilljar__Score__c,skilljar__Success_Status__c\n")
	const rows = 10003
	for i := range rows {
		switch i {
		case 17:
			b.WriteString("bad-parent,ghost,1,PASSED\n")
		case 18:
			b.WriteString("bad-score,stu-0,lots,PASSED\n")
		default:
			fmt.Fprintf(&b, "p-%d,STU-0,%d,\"PASSED\"\n", i, i)
		}
	}
	if r := c.do("PUT", "jobs/ingest/"+info.ID+"/batches", b.String()); r.status != http.StatusCreated {
		t.Fatalf("upload = %d %s", r.status, r.body)
	}
	if r := c.do("PATCH", "jobs/ingest/"+info.ID, map[string]string{"state": "UploadComplete"}); r.status != 200 {
		t.Fatalf("close = %d %s", r.status, r.body)
	}
	final, states := c.waitJob(info.ID)
	if final.State != stateJobComplete || !slices.Contains(states, stateInProgress) {
		t.Fatalf("states %v, final %+v", states, final)
	}
	if final.NumberRecordsProcessed != rows || final.NumberRecordsFailed != 2 {
		t.Fatalf("counters = %d processed, %d failed", final.NumberRecordsProcessed, final.NumberRecordsFailed)
	}
	if s.Count(objProgress) != rows-2 {
		t.Fatalf("Count = %d", s.Count(objProgress))
	}

	ok := c.results(info.ID, "successfulResults")
	if strings.Join(ok[0], ",") != "sf__Id,sf__Created,skilljar__Obfuscated_Id__c,skilljar__Student__r.skilljar__Obfuscated_Id__c,skilljar__Score__c,skilljar__Success_Status__c" ||
		len(ok) != rows-2+1 || !strings.HasPrefix(ok[1][0], "a04") || ok[1][1] != "true" || ok[1][2] != "p-0" {
		t.Fatalf("successfulResults header %v, %d rows, first %v", ok[0], len(ok), ok[1])
	}
	failed := c.results(info.ID, "failedResults")
	if len(failed) != 3 || failed[0][1] != "sf__Error" {
		t.Fatalf("failedResults = %v", failed)
	}
	errs := map[string]string{failed[1][2]: failed[1][1], failed[2][2]: failed[2][1]}
	if !strings.HasPrefix(errs["bad-parent"], "INVALID_FIELD:Foreign key external ID: ghost not found") ||
		!strings.HasPrefix(errs["bad-score"], "INVALID_TYPE_ON_FIELD_IN_RECORD:") {
		t.Fatalf("sf__Error values = %v", errs)
	}
	if un := c.results(info.ID, "unprocessedrecords"); len(un) != 1 {
		t.Fatalf("unprocessedrecords of a complete job = %v", un)
	}
	var limits map[string]limit
	c.do("GET", "limits", nil).json(t, &limits)
	if limits["DailyBulkApiBatches"].Remaining != 15000-2 {
		t.Fatalf("DailyBulkApiBatches = %+v, want two internal batches spent", limits["DailyBulkApiBatches"])
	}

	// Replaying the same file updates instead of creating.
	again := c.createJob(upsertJob(objProgress))
	c.do("PUT", "jobs/ingest/"+again.ID+"/batches", "skilljar__Obfuscated_Id__c,skilljar__Score__c\np-1,99\n")
	c.do("PATCH", "jobs/ingest/"+again.ID, map[string]string{"state": "UploadComplete"})
	c.waitJob(again.ID)
	if r := c.results(again.ID, "successfulResults"); r[1][1] != "false" {
		t.Fatalf("replay = %v, want sf__Created false", r)
	}
}

func TestBulkEmptyCellsLeaveFieldsAndNAClearsThem(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("a", studentEmail, "a@example.com", "skilljar__Last_Name__c", "Keep"))
	job := c.createJob(upsertJob(objStudent))
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "Id,skilljar__Obfuscated_Id__c,skilljar__Email__c,skilljar__Last_Name__c\n,a,#N/A,\n")
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "UploadComplete"})
	if final, _ := c.waitJob(job.ID); final.NumberRecordsFailed != 0 {
		t.Fatalf("job = %+v", final)
	}
	rec, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "a")
	if _, has := rec[studentEmail]; has || rec["skilljar__Last_Name__c"] != "Keep" {
		t.Fatalf("record = %v, want email cleared and last name kept", rec)
	}
}

func TestBulkJobWithAnUnknownColumnFails(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	job := c.createJob(upsertJob(objStudent))
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c,Nope__c\na,1\nb,2\n")
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "UploadComplete"})
	final, _ := c.waitJob(job.ID)
	if final.State != stateFailed || !strings.Contains(final.ErrorMessage, "Nope__c") {
		t.Fatalf("job = %+v", final)
	}
	if un := c.results(job.ID, "unprocessedrecords"); len(un) != 3 || un[1][0] != "a" {
		t.Fatalf("unprocessedrecords = %v", un)
	}
	if s.Count(objStudent) != 0 {
		t.Fatalf("a failed job wrote rows")
	}
}

func TestBulkAbortLeavesRowsUnprocessedAndDeleteRemovesTheJob(t *testing.T) {
	s := startSim(t, Config{BulkBatchDelay: time.Hour})
	c := newClient(t, s)
	job := c.createJob(upsertJob(objStudent))
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c\na\nb\n")
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "UploadComplete"})
	if r := c.do("DELETE", "jobs/ingest/"+job.ID, nil); r.status != 400 || r.errorCode(t) != "INVALIDJOBSTATE" {
		t.Fatalf("delete while processing = %d %s", r.status, r.body)
	}
	r := c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "Aborted"})
	var info jobInfo
	r.json(t, &info)
	if r.status != 200 || info.State != stateAborted {
		t.Fatalf("abort = %d %s", r.status, r.body)
	}
	if un := c.results(job.ID, "unprocessedrecords"); len(un) != 3 {
		t.Fatalf("unprocessedrecords = %v", un)
	}
	if s.Count(objStudent) != 0 || c.job(job.ID).NumberRecordsProcessed != 0 {
		t.Fatalf("an aborted job wrote rows")
	}
	if r := c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "UploadComplete"}); r.status != 400 {
		t.Fatalf("reopening an aborted job = %d", r.status)
	}

	var list struct {
		Done    bool      `json:"done"`
		Records []jobInfo `json:"records"`
	}
	c.do("GET", "jobs/ingest", nil).json(t, &list)
	if !list.Done || len(list.Records) != 1 || list.Records[0].ID != job.ID {
		t.Fatalf("job list = %+v", list)
	}
	if r := c.do("DELETE", "jobs/ingest/"+job.ID, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete = %d %s", r.status, r.body)
	}
	if r := c.do("GET", "jobs/ingest/"+job.ID, nil); r.status != 404 {
		t.Fatalf("GET after delete = %d", r.status)
	}
}

func TestBulkRefusesBadJobsAndASecondUpload(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	for name, body := range map[string]map[string]any{
		"unknown object":       {"object": "Nope__c", "operation": "insert"},
		"unsupported op":       {"object": objStudent, "operation": "hardDelete"},
		"upsert without field": {"object": objStudent, "operation": "upsert"},
		"not an external id":   {"object": objStudent, "operation": "upsert", "externalIdFieldName": studentEmail},
		"bad delimiter":        {"object": objStudent, "operation": "insert", "columnDelimiter": "SPACE"},
	} {
		if r := c.do("POST", "jobs/ingest", body); r.status != 400 || r.errorCode(t) != "INVALIDJOB" {
			t.Errorf("%s = %d %s", name, r.status, r.body)
		}
	}
	job := c.createJob(upsertJob(objStudent))
	if r := c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c\na\n"); r.status != 201 {
		t.Fatalf("first upload = %d", r.status)
	}
	if r := c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c\nb\n"); r.status != 400 || r.errorCode(t) != "INVALIDJOBSTATE" {
		t.Fatalf("second upload = %d %s", r.status, r.body)
	}
	if r := c.do("GET", "jobs/ingest/750000000000000AAA", nil); r.status != 404 {
		t.Fatalf("unknown job = %d", r.status)
	}
}

func TestBulkMultipleUploadsWhenConfigured(t *testing.T) {
	s := startSim(t, Config{BulkMultipleUploads: true})
	c := newClient(t, s)
	job := c.createJob(map[string]any{"object": objStudent, "operation": "insert", "columnDelimiter": "PIPE"})
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c|skilljar__Email__c\na|a@x.io\n")
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", "skilljar__Obfuscated_Id__c|skilljar__Email__c\nb|b@x.io\n")
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]string{"state": "UploadComplete"})
	if final, _ := c.waitJob(job.ID); final.NumberRecordsProcessed != 2 || s.Count(objStudent) != 2 {
		t.Fatalf("job = %+v, count %d", final, s.Count(objStudent))
	}
	// Inserts are logged under the object's external id so replays stay countable.
	if log := s.WriteLog(); len(log) != 2 || log[0].ExternalID != "a" || log[1].ExternalID != "b" || !log[1].Created {
		t.Fatalf("WriteLog = %+v", log)
	}
}
