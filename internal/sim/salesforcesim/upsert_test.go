package salesforcesim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	objStudent   = "skilljar__Student__c"
	objCourse    = "skilljar__Course__c"
	objProgress  = "skilljar__Course_Progress__c"
	studentRel   = "skilljar__Student__r"
	studentEmail = "skilljar__Email__c"
)

func TestCollectionsUpsertCreatesThenUpdatesAndAnswersInOrder(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)

	first := c.upsert(objStudent, false,
		student("u-1", studentEmail, "a@example.com"),
		student("u-2", studentEmail, "b@example.com"))
	for i, r := range first {
		if !r.Success || !r.Created || r.ID == nil || !strings.HasPrefix(*r.ID, "a01") || len(*r.ID) != 18 {
			t.Fatalf("result %d of the first upsert = %+v, want a created a01 id", i, r)
		}
	}
	second := c.upsert(objStudent, false,
		student("u-3", studentEmail, "c@example.com"),
		student("U-1", studentEmail, "a2@example.com")) // external ids match case-insensitively
	if !second[0].Created || second[1].Created || *second[1].ID != *first[0].ID {
		t.Fatalf("second upsert = %+v, want a create then an update of %s", second, *first[0].ID)
	}
	if n := s.Count(objStudent); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	rec, ok := s.RecordByExternalID(objStudent, ObfuscatedID, "u-1")
	if !ok || rec[studentEmail] != "a2@example.com" || rec["Name"] != *first[0].ID {
		t.Fatalf("u-1 = %v, want the updated email and Name defaulted to the Id", rec)
	}
	if !rec["LastModifiedDate"].(time.Time).After(rec["CreatedDate"].(time.Time)) &&
		!rec["LastModifiedDate"].(time.Time).Equal(rec["CreatedDate"].(time.Time)) {
		t.Fatalf("LastModifiedDate before CreatedDate: %v", rec)
	}
	log := s.WriteLog()
	if len(log) != 4 || log[3] != (Write{SObject: objStudent, ExternalID: "U-1", ID: *first[0].ID, Created: false}) {
		t.Fatalf("WriteLog = %+v, want 4 writes ending with the update of U-1", log)
	}
}

func TestCollectionsUpsertReportsEachrecordErrCode(t *testing.T) {
	unique := DefaultSchema()
	for i := range unique {
		if unique[i].Name == objStudent {
			for j := range unique[i].Fields {
				if unique[i].Fields[j].Name == studentEmail {
					unique[i].Fields[j].Unique = true
				}
			}
		}
	}
	s := startSim(t, Config{Schema: unique})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("taken", studentEmail, "taken@example.com"))
	c.upsert(objCourse, false, map[string]any{ObfuscatedID: "course-1"})
	s.SetFieldAccess(objStudent, "skilljar__First_Name__c", false, true)
	s.InjectRecordError(objStudent, "locked", "UNABLE_TO_LOCK_ROW", 1)

	cases := []struct {
		name   string
		object string
		record map[string]any
		code   string
		fields []string
	}{
		{"required lookup missing", objProgress, map[string]any{ObfuscatedID: "p-1"}, "REQUIRED_FIELD_MISSING",
			[]string{"skilljar__Student__c"}},
		{"text over its length", objStudent, student("long", "skilljar__Last_Name__c", strings.Repeat("é", 256)),
			"STRING_TOO_LONG", []string{"skilljar__Last_Name__c"}},
		{"malformed email", objStudent, student("bad-mail", studentEmail, "not-an-email"), "INVALID_EMAIL_ADDRESS",
			[]string{studentEmail}},
		{"field not createable", objStudent, student("no-create", "skilljar__First_Name__c", "Ann"),
			"INVALID_FIELD_FOR_INSERT_UPDATE", []string{"skilljar__First_Name__c"}},
		{"unique collision", objStudent, student("other", studentEmail, "TAKEN@example.com"), "DUPLICATE_VALUE", []string{}},
		{"missing parent", objProgress, map[string]any{ObfuscatedID: "p-2", studentRel: map[string]any{ObfuscatedID: "ghost"}},
			"INVALID_FIELD", []string{}},
		{"bad picklist value", objProgress, map[string]any{ObfuscatedID: "p-3", "skilljar__Success_Status__c": "MAYBE",
			"skilljar__Course__r": map[string]any{ObfuscatedID: "course-1"}}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
			[]string{"skilljar__Success_Status__c"}},
		{"injected lock", objStudent, student("locked"), "UNABLE_TO_LOCK_ROW", []string{}},
		{"malformed id", objStudent, student("bad-id", "skilljar__Contact__c", "nope"), "MALFORMED_ID",
			[]string{"skilljar__Contact__c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := c.upsert(tc.object, false, tc.record)[0]
			if res.Success || len(res.Errors) == 0 || res.Errors[0].StatusCode != tc.code {
				t.Fatalf("result = %+v, want error %s", res, tc.code)
			}
			if got := res.Errors[0].Fields; strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields = %v, want %v", got, tc.fields)
			}
		})
	}
	if n := s.Count(objProgress); n != 0 {
		t.Fatalf("%d progress rows written by failing records", n)
	}
	if res := c.upsert(objStudent, false, student("locked"))[0]; !res.Success {
		t.Fatalf("the injected lock error should fire once, then %+v", res)
	}
	// Contact has no external id, so its calculated Name is tried through a plain create.
	if r := c.do("POST", "sobjects/Contact", map[string]any{"LastName": "X", "Name": "Y"}); r.status != http.StatusBadRequest ||
		r.errorCode(t) != "INVALID_FIELD_FOR_INSERT_UPDATE" {
		t.Fatalf("writing the calculated Contact.Name = %d %s, want 400 INVALID_FIELD_FOR_INSERT_UPDATE", r.status, r.body)
	}
}

func TestCollectionsUpsertAllOrNoneRollsBackEveryRecord(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("u-1", studentEmail, "old@example.com"))

	res := c.upsert(objStudent, true,
		student("u-1", studentEmail, "new@example.com"),
		student("u-2"),
		student("u-3", studentEmail, "broken"))
	for i, want := range []string{"ALL_OR_NONE_OPERATION_ROLLED_BACK", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_EMAIL_ADDRESS"} {
		if res[i].Success || res[i].Errors[0].StatusCode != want || res[i].ID != nil {
			t.Fatalf("result %d = %+v, want %s without id", i, res[i], want)
		}
	}
	rec, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "u-1")
	if s.Count(objStudent) != 1 || rec[studentEmail] != "old@example.com" || len(s.WriteLog()) != 1 {
		t.Fatalf("after rollback: count %d, u-1 %v, %d writes; want the state before the request",
			s.Count(objStudent), rec, len(s.WriteLog()))
	}
	if res := c.upsert(objStudent, true, student("u-2")); !res[0].Success || !res[0].Created {
		t.Fatalf("a clean allOrNone request = %+v, want created", res)
	}
}

func TestCollectionsUpsertRejectsDuplicateExternalIDsInOneRequest(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	res := c.upsert(objStudent, false, student("dup"), student("other"), student("DUP"))
	if res[0].Success || res[2].Success || !res[1].Success {
		t.Fatalf("results = %+v, want both copies of dup rejected and other written", res)
	}
	if e := res[0].Errors[0]; e.StatusCode != "DUPLICATE_VALUE" || !strings.Contains(e.Message, "Duplicate external id specified: dup") {
		t.Fatalf("error = %+v", e)
	}
	if s.Count(objStudent) != 1 {
		t.Fatalf("Count = %d, want 1", s.Count(objStudent))
	}
}

func TestCollectionsUpsertRejectsWholeMalformedRequests(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	many := make([]map[string]any, 201)
	for i := range many {
		many[i] = student("x")
	}
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"over 200 records", "composite/sobjects/" + objStudent + "/" + ObfuscatedID, upsertBody(false, objStudent, many...),
			400, "EXCEEDED_ID_LIMIT"},
		{"unknown field", "composite/sobjects/" + objStudent + "/" + ObfuscatedID,
			upsertBody(false, objStudent, student("a"), student("b", "Nope__c", 1)), 400, "INVALID_FIELD"},
		{"no attributes.type", "composite/sobjects/" + objStudent + "/" + ObfuscatedID,
			map[string]any{"records": []any{student("a")}}, 400, "INVALID_TYPE"},
		{"wrong JSON type", "composite/sobjects/" + objProgress + "/" + ObfuscatedID,
			upsertBody(false, objProgress, map[string]any{ObfuscatedID: "p", "skilljar__Score__c": "lots"}), 400, "JSON_PARSER_ERROR"},
		{"not an external id field", "composite/sobjects/" + objStudent + "/" + studentEmail,
			upsertBody(false, objStudent, student("a")), 404, "NOT_FOUND"},
		{"unknown object", "composite/sobjects/Nope__c/" + ObfuscatedID, upsertBody(false, "Nope__c", student("a")),
			404, "NOT_FOUND"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("PATCH", tc.path, tc.body)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if r := c.do("PATCH", "composite/sobjects/"+objStudent+"/"+ObfuscatedID,
		upsertBody(false, objStudent, student("a"), student("b", "Nope__c", 1))); !strings.Contains(string(r.body),
		"No such column 'Nope__c' on sobject of type "+objStudent) {
		t.Fatalf("unknown field message = %s", r.body)
	}
	if n := s.Count(objStudent); n != 0 {
		t.Fatalf("a rejected request wrote %d rows", n)
	}
}

func TestParentReferencesResolveByExternalIDAndNullClears(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	stu := c.upsert(objStudent, false, student("Stu-1"))[0]
	course := c.upsert(objCourse, false, map[string]any{ObfuscatedID: "c-1", "skilljar__Title__c": "Go"})[0]

	res := c.upsert(objProgress, false, map[string]any{
		ObfuscatedID:                  "p-1",
		studentRel:                    map[string]any{ObfuscatedID: "stu-1"},
		"skilljar__Course__r":         map[string]any{"attributes": map[string]any{"type": objCourse}, ObfuscatedID: "C-1"},
		"skilljar__Score__c":          88.5,
		"skilljar__Completed_At__c":   "2024-03-01T10:00:00.000+0000",
		"skilljar__Success_Status__c": "PASSED",
		"skilljar__Active__c":         true,
	})[0]
	if !res.Success {
		t.Fatalf("progress upsert = %+v", res)
	}
	rec, _ := s.RecordByExternalID(objProgress, ObfuscatedID, "p-1")
	want := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	if rec["skilljar__Student__c"] != *stu.ID || rec["skilljar__Course__c"] != *course.ID ||
		rec["skilljar__Score__c"] != 88.5 || !rec["skilljar__Completed_At__c"].(time.Time).Equal(want) ||
		rec["skilljar__Active__c"] != true {
		t.Fatalf("stored progress = %v", rec)
	}
	// Absent keys stay; null clears.
	c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1", "skilljar__Course__c": nil, "skilljar__Score__c": nil})
	rec, _ = s.RecordByExternalID(objProgress, ObfuscatedID, "p-1")
	if _, has := rec["skilljar__Course__c"]; has || rec["skilljar__Student__c"] != *stu.ID || rec["skilljar__Success_Status__c"] != "PASSED" {
		t.Fatalf("after clearing = %v, want Course cleared and the rest unchanged", rec)
	}
	if _, has := rec["skilljar__Score__c"]; has {
		t.Fatalf("score not cleared: %v", rec)
	}
	// A required lookup cannot be cleared.
	res = c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1", "skilljar__Student__c": nil})[0]
	if res.Success || res.Errors[0].StatusCode != "REQUIRED_FIELD_MISSING" {
		t.Fatalf("clearing the required student = %+v", res)
	}
}

func TestSingleRecordUpsertAnswers201Then200(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	path := "sobjects/" + objStudent + "/" + ObfuscatedID + "/single-1"
	var first, second upsertResult
	r := c.do("PATCH", path, map[string]any{studentEmail: "s@example.com"})
	if r.status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.status, r.body)
	}
	r.json(t, &first)
	r = c.do("PATCH", path, map[string]any{studentEmail: "t@example.com"})
	if r.status != http.StatusOK {
		t.Fatalf("update = %d %s", r.status, r.body)
	}
	r.json(t, &second)
	if !first.Created || second.Created || *first.ID != *second.ID {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if r := c.do("PATCH", path, map[string]any{studentEmail: "bad"}); r.status != 400 || r.errorCode(t) != "INVALID_EMAIL_ADDRESS" {
		t.Fatalf("invalid single upsert = %d %s", r.status, r.body)
	}
	got := c.do("GET", "sobjects/"+objStudent+"/"+*first.ID, nil)
	var rec map[string]any
	got.json(t, &rec)
	if got.status != 200 || rec[studentEmail] != "t@example.com" || rec[ObfuscatedID] != "single-1" || rec["skilljar__Contact__c"] != nil {
		t.Fatalf("GET by id = %d %s", got.status, got.body)
	}
	if _, has := rec["skilljar__Contact__c"]; !has {
		t.Fatalf("GET by id omits unset fields instead of answering null: %s", got.body)
	}
	// A 15-character id finds the same record.
	if got := c.do("GET", "sobjects/"+objStudent+"/"+(*first.ID)[:15], nil); got.status != 200 {
		t.Fatalf("GET by 15-character id = %d", got.status)
	}
	if got := c.do("GET", "sobjects/"+objStudent+"/"+ObfuscatedID+"/SINGLE-1", nil); got.status != 200 {
		t.Fatalf("GET by external id = %d", got.status)
	}
	if got := c.do("GET", "sobjects/"+objStudent+"/a015g000000000zAAA", nil); got.status != 404 || got.errorCode(t) != "NOT_FOUND" {
		t.Fatalf("GET of a missing id = %d %s", got.status, got.body)
	}
}

func TestDescribeReportsFlagsAndFollowsSetFieldAccess(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	describe := func() map[string]fieldDescribe {
		r := c.do("GET", "sobjects/"+objProgress+"/describe", nil)
		var d struct {
			Name      string          `json:"name"`
			KeyPrefix string          `json:"keyPrefix"`
			Fields    []fieldDescribe `json:"fields"`
		}
		r.json(t, &d)
		if d.Name != objProgress || d.KeyPrefix != "a04" {
			t.Fatalf("describe = %s", r.body)
		}
		out := make(map[string]fieldDescribe)
		for _, f := range d.Fields {
			out[f.Name] = f
		}
		return out
	}
	fields := describe()
	ext := fields[ObfuscatedID]
	if !ext.ExternalID || !ext.Unique || !ext.IDLookup || ext.Type != TypeString || ext.Length != 255 || !ext.Custom {
		t.Fatalf("external id describe = %+v", ext)
	}
	stu := fields["skilljar__Student__c"]
	if stu.Type != TypeRef || stu.Nillable || stu.RelationshipName == nil || *stu.RelationshipName != studentRel ||
		len(stu.ReferenceTo) != 1 || stu.ReferenceTo[0] != objStudent {
		t.Fatalf("student lookup describe = %+v", stu)
	}
	if st := fields["skilljar__Success_Status__c"]; st.Type != TypePicklist || len(st.PicklistValues) != 2 || st.PicklistValues[0].Value != "PASSED" {
		t.Fatalf("picklist describe = %+v", st)
	}
	if cd := fields["CreatedDate"]; cd.Createable || cd.Updateable {
		t.Fatalf("CreatedDate describe = %+v", cd)
	}

	s.SetFieldAccess(objProgress, "skilljar__Score__c", true, false)
	if sc := describe()["skilljar__Score__c"]; !sc.Createable || sc.Updateable {
		t.Fatalf("after SetFieldAccess: %+v", sc)
	}
	c.upsert(objStudent, false, student("s"))
	rec := map[string]any{ObfuscatedID: "p", studentRel: map[string]any{ObfuscatedID: "s"}, "skilljar__Score__c": 1}
	if res := c.upsert(objProgress, false, rec)[0]; !res.Success {
		t.Fatalf("create with a createable field = %+v", res)
	}
	if res := c.upsert(objProgress, false, rec)[0]; res.Success || res.Errors[0].StatusCode != "INVALID_FIELD_FOR_INSERT_UPDATE" {
		t.Fatalf("update of a non-updateable field = %+v", res)
	}
	if r := c.do("GET", "sobjects/Nope__c/describe", nil); r.status != 404 || r.errorCode(t) != "NOT_FOUND" {
		t.Fatalf("describe of an unknown object = %d %s", r.status, r.body)
	}
}

func TestLockRateFailsRecordsWithUnableToLockRow(t *testing.T) {
	s := startSim(t, Config{LockRate: 0.5, Seed: 7})
	c := newClient(t, s)
	var records []map[string]any
	for i := range 200 {
		records = append(records, student(fmt.Sprintf("lock-%d", i)))
	}
	locked := 0
	for _, r := range c.upsert(objStudent, false, records...) {
		if !r.Success {
			if r.Errors[0].StatusCode != "UNABLE_TO_LOCK_ROW" {
				t.Fatalf("unexpected error %+v", r.Errors[0])
			}
			locked++
		}
	}
	if locked < 60 || locked > 140 {
		t.Fatalf("%d of 200 records locked at LockRate 0.5", locked)
	}
	if s.Count(objStudent) != 200-locked {
		t.Fatalf("Count = %d, want %d", s.Count(objStudent), 200-locked)
	}
}
