package salesforcesim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
)

const (
	objPublished = "skilljar__Published_Course__c"
	courseRel    = "skilljar__Course__r"
)

// describeFields fetches an object's describe over HTTP, by field name.
func (c *client) describeFields(object string) map[string]fieldDescribe {
	c.t.Helper()
	r := c.do("GET", "sobjects/"+object+"/describe", nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("describe %s = %d %s", object, r.status, r.body)
	}
	var d struct{ Fields []fieldDescribe }
	r.json(c.t, &d)
	out := make(map[string]fieldDescribe)
	for _, f := range d.Fields {
		out[f.Name] = f
	}
	return out
}

func ref(ext string) map[string]any { return map[string]any{ObfuscatedID: ext} }

// progress is a Course Progress record under student and course.
func progress(ext, studentExt, courseExt string, fields ...any) map[string]any {
	r := student(ext, fields...)
	r[studentRel] = ref(studentExt)
	r[courseRel] = ref(courseExt)
	return r
}

// seedParents writes students and a course the progress records of a test refer to.
func seedParents(c *client, students ...string) {
	c.t.Helper()
	for _, s := range students {
		if r := c.upsert(objStudent, false, student(s)); !r[0].Success {
			c.t.Fatalf("seed student %s: %+v", s, r[0].Errors)
		}
	}
	if r := c.upsert(objCourse, false, student("c-1")); !r[0].Success {
		c.t.Fatalf("seed course: %+v", r[0].Errors)
	}
}

func firstError(t *testing.T, r upsertResult) recordErr {
	t.Helper()
	if r.Success || len(r.Errors) == 0 {
		t.Fatalf("result %+v succeeded, want an error", r)
	}
	return r.Errors[0]
}

func TestParseProfilesNamesTheKnownOnes(t *testing.T) {
	got, err := ParseProfiles(" master-detail,locks,,locks ")
	if err != nil || len(got) != 2 || got[0] != ProfileMasterDetail || got[1] != ProfileLocks {
		t.Fatalf("ParseProfiles = %v, %v", got, err)
	}
	if _, err := ParseProfiles("master-detail,lockz"); err == nil || !strings.Contains(err.Error(), `"lockz"`) ||
		!strings.Contains(err.Error(), ProfileDeveloperEdition) {
		t.Fatalf("unknown profile error = %v, want the name and the known list", err)
	}
	if _, err := Start(Config{Profiles: []string{"nope"}}, "127.0.0.1:0"); err == nil {
		t.Fatal("Start accepted an unknown profile")
	}
}

func TestDefaultOrgKeepsLookupsReparentableAndNameWritable(t *testing.T) {
	c := newClient(t, startSim(t, Config{}))
	p := c.describeFields(objProgress)
	if st := p["skilljar__Student__c"]; !st.Updateable || st.CascadeDelete || p["Name"].AutoNumber || !p["Name"].Createable {
		t.Fatalf("default describe changed: student %+v name %+v", st, p["Name"])
	}
}

func TestMasterDetailIsCreateOnlyAndRefusesReparenting(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileMasterDetail}})
	c := newClient(t, s)
	st := c.describeFields(objProgress)["skilljar__Student__c"]
	if !st.Createable || st.Updateable || st.Nillable || !st.CascadeDelete {
		t.Fatalf("master-detail describe = %+v, want createable, not updateable, required, cascadeDelete", st)
	}
	if pc := c.describeFields(objPublished)["skilljar__Course__c"]; pc.Updateable || !pc.CascadeDelete {
		t.Fatalf("published course → course describe = %+v", pc)
	}
	seedParents(c, "u-1", "u-2")
	if r := c.upsert(objProgress, false, progress("cp-1", "u-1", "c-1")); !r[0].Success || !r[0].Created {
		t.Fatalf("insert with the master = %+v", r[0])
	}
	e := firstError(t, c.upsert(objProgress, false, progress("cp-1", "u-2", "c-1"))[0])
	if e.StatusCode != "INVALID_FIELD_FOR_INSERT_UPDATE" || !strings.HasPrefix(e.Message, "Unable to create/update fields: skilljar__Student__c.") ||
		len(e.Fields) != 1 || e.Fields[0] != "skilljar__Student__c" {
		t.Fatalf("reparenting = %+v", e)
	}
	// Left out on update, the master stays and the rest is written.
	upd := student("cp-1", "skilljar__Score__c", 7)
	upd[courseRel] = ref("c-1")
	if r := c.upsert(objProgress, false, upd); !r[0].Success || r[0].Created {
		t.Fatalf("update without the master = %+v", r[0])
	}
	rec, _ := s.RecordByExternalID(objProgress, ObfuscatedID, "cp-1")
	u1, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "u-1")
	if rec["skilljar__Student__c"] != u1["Id"] || rec["skilljar__Score__c"] != 7.0 {
		t.Fatalf("progress after the update = %v", rec)
	}
	// A child without its master cannot be created.
	noMaster := student("cp-2")
	noMaster[courseRel] = ref("c-1")
	if e := firstError(t, c.upsert(objProgress, false, noMaster)[0]); e.StatusCode != "REQUIRED_FIELD_MISSING" {
		t.Fatalf("insert without the master = %+v", e)
	}
}

func TestAutoNumberNameIsNumberedAndRefusesWrites(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileAutoNumber}})
	c := newClient(t, s)
	name := c.describeFields(objProgress)["Name"]
	if !name.AutoNumber || name.Createable || name.Updateable || !name.DefaultedOnCreate {
		t.Fatalf("auto-number describe = %+v", name)
	}
	seedParents(c, "u-1")
	e := firstError(t, c.upsert(objProgress, false, progress("cp-1", "u-1", "c-1", "Name", "Intro"))[0])
	if e.StatusCode != "INVALID_FIELD_FOR_INSERT_UPDATE" || e.Fields[0] != "Name" {
		t.Fatalf("writing the auto-number = %+v", e)
	}
	for i := 1; i <= 2; i++ {
		if r := c.upsert(objProgress, false, progress(fmt.Sprint("cp-", i), "u-1", "c-1")); !r[0].Success {
			t.Fatalf("insert without Name = %+v", r[0])
		}
	}
	rec, _ := s.RecordByExternalID(objProgress, ObfuscatedID, "cp-2")
	if rec["Name"] != "CP-0000002" {
		t.Fatalf("second auto-number = %v, want CP-0000002", rec["Name"])
	}
	// Other objects keep a writable Name.
	if r := c.upsert(objStudent, false, student("u-9", "Name", "Ada")); !r[0].Success {
		t.Fatalf("student Name = %+v", r[0])
	}
}

func TestSparseOrgLacksOptionalFieldsAndRefusesThem(t *testing.T) {
	c := newClient(t, startSim(t, Config{Profiles: []string{ProfileSparse}}))
	p := c.describeFields(objProgress)
	for _, f := range []string{"skilljar__Latest_Activity__c", "skilljar__Enrollment_Id__c", "skilljar__Active__c"} {
		if _, ok := p[f]; ok {
			t.Errorf("describe still lists %s", f)
		}
	}
	if _, ok := p["skilljar__Completed_At__c"]; !ok {
		t.Fatal("a confirmed field went missing")
	}
	r := c.do("PATCH", "composite/sobjects/"+objCourse+"/"+ObfuscatedID,
		upsertBody(false, objCourse, student("c-1", "skilljar__Short_Description__c", "x")))
	if r.status != http.StatusBadRequest || r.errorCode(t) != "INVALID_FIELD" ||
		!strings.Contains(string(r.body), "No such column 'skilljar__Short_Description__c'") {
		t.Fatalf("write of a missing field = %d %s", r.status, r.body)
	}
}

func TestPicklistOrgRefusesSkilljarValues(t *testing.T) {
	c := newClient(t, startSim(t, Config{Profiles: []string{ProfilePicklist}}))
	st := c.describeFields(objProgress)["skilljar__Success_Status__c"]
	if !st.RestrictedPicklist || len(st.PicklistValues) != 3 || st.PicklistValues[0].Value != "Passed" {
		t.Fatalf("picklist describe = %+v", st)
	}
	seedParents(c, "u-1")
	e := firstError(t, c.upsert(objProgress, false, progress("cp-1", "u-1", "c-1", "skilljar__Success_Status__c", "PASSED"))[0])
	if e.StatusCode != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" || !strings.HasSuffix(e.Message, "bad value for restricted picklist field: PASSED") {
		t.Fatalf("Skilljar's value = %+v", e)
	}
	if r := c.upsert(objProgress, false, progress("cp-1", "u-1", "c-1", "skilljar__Success_Status__c", "Passed")); !r[0].Success {
		t.Fatalf("the org's value = %+v", r[0])
	}
}

// automatedIDs finds external ids the automation profile's rule and trigger fail, and ones
// it lets through.
func automatedIDs(s *Sim, object string, n int) (failing, passing []string) {
	t := s.table(object)
	for i := 0; len(failing) < n || len(passing) < n; i++ {
		id := fmt.Sprint("id-", i)
		if _, bad := s.automationError(t, id); bad && len(failing) < n {
			failing = append(failing, id)
		} else if !bad && len(passing) < n {
			passing = append(passing, id)
		}
	}
	return failing, passing
}

func TestAutomationFailsSpecificRecordsAndLargeRequests(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileAutomation}})
	c := newClient(t, s)
	badStudents, okStudents := automatedIDs(s, objStudent, 1)
	res := c.upsert(objStudent, false, student(badStudents[0]), student(okStudents[0]))
	if e := firstError(t, res[0]); e.StatusCode != "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" || !strings.HasPrefix(e.Message, "StudentAccountRollup: execution of AfterInsert") {
		t.Fatalf("trigger failure = %+v", e)
	}
	if !res[1].Success {
		t.Fatalf("a record the trigger passes = %+v", res[1])
	}
	seedParents(c, "u-1")
	badProgress, okProgress := automatedIDs(s, objProgress, 1)
	res = c.upsert(objProgress, false, progress(badProgress[0], "u-1", "c-1"), progress(okProgress[0], "u-1", "c-1"))
	if e := firstError(t, res[0]); e.StatusCode != "FIELD_CUSTOM_VALIDATION_EXCEPTION" || !res[1].Success {
		t.Fatalf("validation rule = %+v / %+v", e, res[1])
	}

	// 121 records exhaust the CPU limit: every record fails, nothing is written.
	_, many := automatedIDs(s, objStudent, defaultCPULimitRecords+1)
	records := make([]map[string]any, len(many))
	for i, id := range many {
		records[i] = student(id)
	}
	before := s.Count(objStudent)
	for _, r := range c.upsert(objStudent, false, records...) {
		if e := firstError(t, r); e.StatusCode != "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" || !strings.Contains(e.Message, "Apex CPU time limit exceeded") {
			t.Fatalf("CPU limit failure = %+v", e)
		}
	}
	if s.Count(objStudent) != before {
		t.Fatal("a request over the CPU limit wrote records")
	}
	if res := c.upsert(objStudent, false, records[:defaultCPULimitRecords]...); !res[0].Success || !res[len(res)-1].Success {
		t.Fatalf("a request at the limit = %+v", res[0])
	}
	// Objects without triggers take full requests.
	courses := make([]map[string]any, 200)
	for i := range courses {
		courses[i] = student(fmt.Sprint("c-", i+10))
	}
	if res := c.upsert(objCourse, false, courses...); !res[199].Success {
		t.Fatalf("200 courses = %+v", res[199])
	}
}

func TestAutomationFailsBulkTriggerChunksOverTheLimit(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileAutomation}})
	c := newClient(t, s)
	_, ids := automatedIDs(s, objStudent, 300)
	var b strings.Builder
	b.WriteString(ObfuscatedID + "\n")
	for _, id := range ids {
		b.WriteString(id + "\n")
	}
	job := c.createJob(upsertJob(objStudent))
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", b.String())
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]any{"state": stateUploadComplete})
	info, _ := c.waitJob(job.ID)
	// The first trigger chunk of 200 fails whole; the remaining 100 pass.
	if info.State != stateJobComplete || info.NumberRecordsFailed != 200 || s.Count(objStudent) != 100 {
		t.Fatalf("job = %+v, %d students written", info, s.Count(objStudent))
	}
	failed := c.results(job.ID, "failedResults")
	if !strings.Contains(failed[1][1], "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY:ProgressRollup: System.LimitException") {
		t.Fatalf("failed result = %v", failed[1])
	}
}

func TestLocksRefuseConcurrentWritesUnderOneParentOnly(t *testing.T) {
	t.Parallel()
	// A window far longer than the gaps between the requests below, so a loaded machine
	// cannot make them miss each other.
	s := startSim(t, Config{Profiles: []string{ProfileLocks}, LockWindow: time.Second})
	c := newClient(t, s)
	seedParents(c, "u-1", "u-2")
	// Sequential writes under one parent never collide: each transaction has ended.
	for i := range 2 {
		if r := c.upsert(objProgress, false, progress(fmt.Sprint("seq-", i), "u-1", "c-1")); !r[0].Success {
			t.Fatalf("sequential write %d = %+v", i, r[0])
		}
	}
	// Two concurrent requests under u-1 collide; one under u-2 alongside them does not.
	var wg sync.WaitGroup
	results := make([][]upsertResult, 3)
	parents := []string{"u-1", "u-1", "u-2"}
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.upsert(objProgress, false, progress(fmt.Sprint("par-", i), parents[i], "c-1"))
		}()
		time.Sleep(50 * time.Millisecond) // the first request is inside its transaction
	}
	wg.Wait()
	if !results[0][0].Success || !results[2][0].Success {
		t.Fatalf("the first write under u-1 and the write under u-2 = %+v, %+v", results[0], results[2])
	}
	u1, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "u-1")
	if e := firstError(t, results[1][0]); e.StatusCode != "UNABLE_TO_LOCK_ROW" ||
		e.Message != "unable to obtain exclusive access to this record or 1 records: "+u1["Id"].(string) {
		t.Fatalf("the concurrent write under u-1 = %+v", e)
	}
	// Once the holder committed, the retry goes through.
	if r := c.upsert(objProgress, false, progress("par-1", "u-1", "c-1")); !r[0].Success {
		t.Fatalf("retry after the lock = %+v", r[0])
	}
}

func TestLocksRunBulkBatchesInParallelSoSharedParentsCollide(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{Profiles: []string{ProfileLocks}, LockWindow: time.Second})
	c := newClient(t, s)
	seedParents(c, "u-1")
	var b strings.Builder
	b.WriteString(ObfuscatedID + "," + studentRel + "." + ObfuscatedID + "," + courseRel + "." + ObfuscatedID + "\n")
	for i := range bulkBatchSize + 1 { // two internal batches, both under u-1
		fmt.Fprintf(&b, "cp-%d,u-1,c-1\n", i)
	}
	job := c.createJob(upsertJob(objProgress))
	c.do("PUT", "jobs/ingest/"+job.ID+"/batches", b.String())
	c.do("PATCH", "jobs/ingest/"+job.ID, map[string]any{"state": stateUploadComplete})
	info, _ := c.waitJob(job.ID)
	// Whichever batch ran second met the first one's lock on u-1 for every record.
	if info.State != stateJobComplete || (info.NumberRecordsFailed != 1 && info.NumberRecordsFailed != bulkBatchSize) {
		t.Fatalf("job = %+v, want one whole batch failed", info)
	}
	if failed := c.results(job.ID, "failedResults"); !strings.HasPrefix(failed[1][1], "UNABLE_TO_LOCK_ROW:") {
		t.Fatalf("failed result = %v", failed[1])
	}
}

func TestDeveloperEditionRefusesASixthConcurrentRequest(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{Profiles: []string{ProfileDeveloperEdition}, Latency: time.Second})
	c := newClient(t, s)
	var wg sync.WaitGroup
	statuses := make([]int, 5)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.do("GET", "limits", nil).status
		}()
	}
	time.Sleep(300 * time.Millisecond) // the five are in flight
	r := c.do("GET", "limits", nil)
	wg.Wait()
	var errs []apiError
	r.json(t, &errs)
	if r.status != http.StatusForbidden || errs[0].ErrorCode != "REQUEST_LIMIT_EXCEEDED" ||
		errs[0].Message != "ConcurrentRequests (Concurrent API Requests) Limit exceeded." {
		t.Fatalf("sixth request = %d %s", r.status, r.body)
	}
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("request %d of the five = %d", i, st)
		}
	}
	if r := c.do("GET", "limits", nil); r.status != http.StatusOK {
		t.Fatalf("a request after the others finished = %d", r.status)
	}
}

func TestDirtyOrgFailsUpsertsMatchingSeveralRecords(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileDirty}})
	c := newClient(t, s)
	if ext := c.describeFields(objStudent)[ObfuscatedID]; ext.Unique || !ext.ExternalID {
		t.Fatalf("dirty external id describe = %+v", ext)
	}
	ids := s.SeedDuplicates(objStudent, "u-1", 2)
	res := c.upsert(objStudent, false, student("u-1", studentEmail, "a@example.com"), student("u-2"))
	e := firstError(t, res[0])
	if e.StatusCode != "DUPLICATE_EXTERNAL_ID" || e.Message != "more than one record found for external id field: ["+ids[0]+", "+ids[1]+"]" {
		t.Fatalf("multi-match upsert = %+v", e)
	}
	if !res[1].Success {
		t.Fatalf("a single match = %+v", res[1])
	}
	r := c.do("PATCH", "sobjects/"+objStudent+"/"+ObfuscatedID+"/u-1", map[string]any{studentEmail: "b@example.com"})
	var urls []string
	r.json(t, &urls)
	if r.status != http.StatusMultipleChoices || len(urls) != 2 || !strings.HasSuffix(urls[1], "/sobjects/"+objStudent+"/"+ids[1]) {
		t.Fatalf("single upsert = %d %s", r.status, r.body)
	}
	if rec, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "u-1"); rec[studentEmail] != nil {
		t.Fatalf("a multi-match wrote %v", rec)
	}
	// A child naming the duplicated parent cannot tell which one it means.
	seedParents(c)
	e = firstError(t, c.upsert(objProgress, false, progress("cp-1", "u-1", "c-1"))[0])
	if e.StatusCode != "DUPLICATE_EXTERNAL_ID" || !strings.Contains(e.Message, ids[1]) {
		t.Fatalf("child of a duplicated parent = %+v", e)
	}
}

func TestRefreshTokenExpiresWhenIdle(t *testing.T) {
	t.Parallel()
	now := clock.NewManual(time.Now())
	s := startSim(t, Config{RefreshIdle: 720 * time.Hour, Now: now.Now})
	tok := s.MintTokens("api refresh_token")
	fresh, _, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", tok.RefreshToken))
	if status != http.StatusOK {
		t.Fatalf("refresh while in use = %d", status)
	}
	now.Advance(720*time.Hour + time.Second)
	_, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", fresh.RefreshToken))
	if status != http.StatusBadRequest || bad.Error != "invalid_grant" || bad.Description != "expired access/refresh token" {
		t.Fatalf("refresh after idling = %d %+v", status, bad)
	}
	if st := s.AuthStats(); st.RevokedGrants != 1 {
		t.Fatalf("the idle grant was not ended: %+v", st)
	}
}

func TestDirtyOrgHasAnotherWriterCreatingContactsBetweenAQueryAndACreate(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileDirty}})
	c := newClient(t, s)
	const soql = "SELECT Id, Email FROM Contact WHERE Email IN ('a@example.com', 'b@example.com')"
	size := func() int {
		var out struct{ TotalSize int }
		c.query(soql).json(t, &out)
		return out.TotalSize
	}
	if n := size(); n != 0 {
		t.Fatalf("first query found %d", n)
	}
	if n := size(); n != 0 {
		t.Fatalf("second query found %d: the other writer creates after the read, not before", n)
	}
	recs := s.Records("Contact")
	if len(recs) != 1 || recs[0]["Email"] != "a@example.com" {
		t.Fatalf("after the racing query the org holds %v, want the other writer's a@example.com", recs)
	}
	// A caller that creates what its query did not find now makes a duplicate.
	r := c.do("POST", "sobjects/Contact", map[string]any{"LastName": "Ada", "Email": "a@example.com"})
	if r.status != http.StatusCreated || s.Count("Contact") != 2 {
		t.Fatalf("create = %d %s, %d Contacts", r.status, r.body, s.Count("Contact"))
	}
	// The default org has no other writer.
	clean := newClient(t, startSim(t, Config{}))
	for range 3 {
		clean.query(soql)
	}
	if n := clean.sim.Count("Contact"); n != 0 {
		t.Fatalf("the default org created %d Contacts", n)
	}
}

func TestSeededDuplicatesPassCustomerAutomation(t *testing.T) {
	s := startSim(t, Config{Profiles: []string{ProfileDirty, ProfileAutomation}})
	failing, _ := automatedIDs(s, objStudent, 1)
	if ids := s.SeedDuplicates(objStudent, failing[0], 2); len(ids) != 2 || ids[0] == "" || ids[1] == "" || s.Count(objStudent) != 2 {
		t.Fatalf("SeedDuplicates = %v with %d students; the org's own records pass its triggers", ids, s.Count(objStudent))
	}
}

func TestConcurrencyLimitCountsOnlyLongRunningRequests(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{ConcurrentLimit: 1, LongRunning: time.Hour, Latency: 200 * time.Millisecond})
	c := newClient(t, s)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := c.do("GET", "limits", nil); r.status != http.StatusOK {
				t.Errorf("a short request = %d %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
}
