package salesforcesim

import (
	"net/http"
	"testing"
	"time"
)

func TestZeroFalseAndMillisecondsAreValuesAndNullClearsThem(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("s-1"))
	res := c.upsert(objProgress, false, map[string]any{
		ObfuscatedID:                  "p-1",
		studentRel:                    map[string]any{ObfuscatedID: "s-1"},
		"skilljar__Score__c":          0,
		"skilljar__Max_Score__c":      -2.5,
		"skilljar__Active__c":         false,
		"skilljar__Completed_At__c":   "2024-05-01T12:00:00.123+02:00",
		"skilljar__Success_Status__c": "FAILED",
	})[0]
	if !res.Success {
		t.Fatalf("upsert = %+v", res)
	}
	rec, _ := s.RecordByExternalID(objProgress, ObfuscatedID, "p-1")
	completed := time.Date(2024, 5, 1, 10, 0, 0, 123e6, time.UTC)
	if rec["skilljar__Score__c"] != 0.0 || rec["skilljar__Max_Score__c"] != -2.5 || rec["skilljar__Active__c"] != false ||
		rec["skilljar__Completed_At__c"] != completed || rec["skilljar__Success_Status__c"] != "FAILED" {
		t.Fatalf("stored = %v", rec)
	}
	if _, has := rec["skilljar__Latest_Activity__c"]; has {
		t.Fatalf("a field never written is present: %v", rec)
	}
	created := rec["CreatedDate"].(time.Time)
	if created.Location() != time.UTC || created.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("CreatedDate = %v, want UTC to the millisecond", created)
	}

	c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1",
		"skilljar__Score__c": nil, "skilljar__Active__c": nil, "skilljar__Completed_At__c": nil})
	rec, _ = s.RecordByExternalID(objProgress, ObfuscatedID, "p-1")
	for _, f := range []string{"skilljar__Score__c", "skilljar__Active__c", "skilljar__Completed_At__c"} {
		if _, has := rec[f]; has {
			t.Errorf("%s = %v after clearing it, want absent", f, rec[f])
		}
	}
	if rec["skilljar__Max_Score__c"] != -2.5 || rec["CreatedDate"] != created || rec["LastModifiedDate"].(time.Time).Before(created) {
		t.Errorf("after clearing = %v, want the other fields and the dates kept", rec)
	}
}

func TestAnIdOfAnotherObjectFindsNothingThoughItNumbersTheSameRow(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	stu := *c.upsert(objStudent, false, student("s-1"))[0].ID
	course := *c.upsert(objCourse, false, map[string]any{ObfuscatedID: "c-1"})[0].ID

	if r := c.do("GET", "sobjects/"+objStudent+"/"+course, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET a student by a course's Id = %d %s, want 404", r.status, r.body)
	}
	res := c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1", "skilljar__Student__c": course})[0]
	if res.Success || res.Errors[0].StatusCode != "INVALID_CROSS_REFERENCE_KEY" {
		t.Fatalf("a course's Id as the student = %+v, want INVALID_CROSS_REFERENCE_KEY", res)
	}
	if res := c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1", "skilljar__Student__c": stu})[0]; !res.Success {
		t.Fatalf("the student's own Id = %+v", res)
	}
}

func TestRowsCreatedAfterARollbackAreFoundByTheirIds(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	c.upsert(objStudent, false, student("s-1"))
	c.upsert(objStudent, true, student("s-2"), student("s-3", studentEmail, "broken"))

	res := c.upsert(objStudent, false, student("s-4"), student("s-5"))
	for i, ext := range []string{"s-4", "s-5"} {
		id := *res[i].ID
		rec, ok := s.RecordByExternalID(objStudent, "Id", id)
		if !ok || rec[ObfuscatedID] != ext {
			t.Fatalf("record by Id %s = %v, want %s", id, rec, ext)
		}
		var got map[string]any
		if r := c.do("GET", "sobjects/"+objStudent+"/"+id, nil); r.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", id, r.status, r.body)
		} else if r.json(t, &got); got[ObfuscatedID] != ext {
			t.Fatalf("GET %s = %v, want %s", id, got, ext)
		}
	}
	log := s.WriteLog()
	if len(log) != 3 || log[1] != (Write{SObject: objStudent, ExternalID: "s-4", ID: *res[0].ID, Created: true}) {
		t.Fatalf("WriteLog = %+v, want s-1, s-4 and s-5 only", log)
	}
}
