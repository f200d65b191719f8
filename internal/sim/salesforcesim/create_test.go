package salesforcesim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// typed is a collections insert record: the fields plus attributes.type.
func typed(object string, fields map[string]any) map[string]any {
	rec := map[string]any{"attributes": map[string]any{"type": object}}
	for k, v := range fields {
		rec[k] = v
	}
	return rec
}

// create sends a collections insert and decodes its SaveResults, keeping each raw item so a
// test can see which keys Salesforce would have sent.
func (c *client) create(allOrNone bool, records ...map[string]any) ([]saveResult, []map[string]json.RawMessage) {
	c.t.Helper()
	resp := c.do("POST", "composite/sobjects", map[string]any{"allOrNone": allOrNone, "records": records})
	if resp.status != http.StatusOK {
		c.t.Fatalf("collections insert: %d %s", resp.status, resp.body)
	}
	var out []saveResult
	var raw []map[string]json.RawMessage
	resp.json(c.t, &out)
	resp.json(c.t, &raw)
	if len(out) != len(records) {
		c.t.Fatalf("collections insert: %d results for %d records", len(out), len(records))
	}
	return out, raw
}

func TestCollectionsInsertCreatesMixedTypesInOrder(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)

	res, raw := c.create(false,
		typed(objCourse, map[string]any{ObfuscatedID: "c-1", "skilljar__Title__c": "Intro"}),
		typed("Contact", map[string]any{"LastName": "Lovelace", "Email": "ada@example.com"}),
		typed("Contact", map[string]any{"LastName": "Broken", "Email": "not-an-email"}),
		typed(objCourse, map[string]any{ObfuscatedID: "c-2"}),
	)
	for i, prefix := range []string{"a02", "003", "", "a02"} {
		if prefix == "" {
			continue
		}
		if !res[i].Success || !strings.HasPrefix(res[i].ID, prefix) || len(res[i].ID) != 18 || len(res[i].Errors) != 0 {
			t.Errorf("result %d = %+v, want a created %s id", i, res[i], prefix)
		}
		if _, ok := raw[i]["created"]; ok {
			t.Errorf("result %d has %q: a SaveResult carries only id, success and errors", i, "created")
		}
	}
	if res[2].Success || len(res[2].Errors) != 1 || res[2].Errors[0].StatusCode != "INVALID_EMAIL_ADDRESS" {
		t.Errorf("result 2 = %+v, want INVALID_EMAIL_ADDRESS", res[2])
	}
	if _, ok := raw[2]["id"]; ok {
		t.Errorf("failed result 2 = %s, want no id key", raw[2])
	}
	if s.Count(objCourse) != 2 || s.Count("Contact") != 1 {
		t.Fatalf("counts: courses %d, contacts %d; want 2 and 1", s.Count(objCourse), s.Count("Contact"))
	}
	contact, _ := s.RecordByExternalID("Contact", "Id", res[1].ID)
	if contact["Email"] != "ada@example.com" || contact["Name"] != "Lovelace" {
		t.Errorf("stored Contact = %v", contact)
	}
	// The write log names inserted custom records by their external id, so replays count.
	log := s.WriteLog()
	if len(log) != 3 || log[0] != (Write{SObject: objCourse, ExternalID: "c-1", ID: res[0].ID, Created: true}) ||
		log[1].SObject != "Contact" || log[2].ExternalID != "c-2" {
		t.Errorf("WriteLog = %+v", log)
	}
}

func TestCollectionsInsertValidatesEachRecordAsOtherWritesDo(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	c.create(false, typed(objStudent, map[string]any{ObfuscatedID: "taken"}))

	for _, tc := range []struct {
		name   string
		record map[string]any
		code   string
	}{
		{"an Id set", typed(objCourse, map[string]any{"Id": newID("a02", 9)}), "INVALID_FIELD_FOR_INSERT_UPDATE"},
		{"required field missing", typed("Contact", map[string]any{"FirstName": "Ann"}), "REQUIRED_FIELD_MISSING"},
		{"text over its length", typed("Contact", map[string]any{"LastName": strings.Repeat("é", 81)}), "STRING_TOO_LONG"},
		{"external id taken", typed(objStudent, map[string]any{ObfuscatedID: "TAKEN"}), "DUPLICATE_VALUE"},
		{"missing parent", typed(objProgress, map[string]any{studentRel: map[string]any{ObfuscatedID: "ghost"}}), "INVALID_FIELD"},
		{"calculated field", typed("Contact", map[string]any{"LastName": "X", "Name": "Y"}), "INVALID_FIELD_FOR_INSERT_UPDATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := c.create(false, tc.record)
			if res[0].Success || len(res[0].Errors) == 0 || res[0].Errors[0].StatusCode != tc.code {
				t.Fatalf("result = %+v, want %s", res[0], tc.code)
			}
		})
	}
	if s.Count(objCourse) != 0 || s.Count("Contact") != 0 || s.Count(objProgress) != 0 || s.Count(objStudent) != 1 {
		t.Fatal("a refused record was written")
	}
}

func TestCollectionsInsertAllOrNoneRollsBackEveryObject(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)

	res, _ := c.create(true,
		typed(objCourse, map[string]any{ObfuscatedID: "c-1"}),
		typed("Contact", map[string]any{"LastName": "Fine"}),
		typed("Contact", map[string]any{"Email": "no-last-name@example.com"}),
	)
	for i, want := range []string{"ALL_OR_NONE_OPERATION_ROLLED_BACK", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING"} {
		if res[i].Success || res[i].ID != "" || res[i].Errors[0].StatusCode != want {
			t.Errorf("result %d = %+v, want %s without id", i, res[i], want)
		}
	}
	if s.Count(objCourse) != 0 || s.Count("Contact") != 0 || len(s.WriteLog()) != 0 {
		t.Fatalf("after rollback: %d courses, %d contacts, %d writes; want none",
			s.Count(objCourse), s.Count("Contact"), len(s.WriteLog()))
	}
	// The rolled-back rows left no gap: the next insert takes the first Id again.
	again, _ := c.create(true, typed(objCourse, map[string]any{ObfuscatedID: "c-1"}))
	if !again[0].Success || again[0].ID != newID("a02", 1) {
		t.Fatalf("clean allOrNone insert = %+v, want the first course id", again[0])
	}
}

func TestCollectionsInsertRefusesWholeMalformedRequests(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	course := func(ext string) map[string]any { return typed(objCourse, map[string]any{ObfuscatedID: ext}) }
	person := typed("Contact", map[string]any{"LastName": "P"})
	many := make([]map[string]any, 201)
	for i := range many {
		many[i] = course(string(rune('a'+i%26)) + strings.Repeat("x", i/26))
	}
	// Alternating types: every record starts a new chunk.
	alternating := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = person
			if i%2 == 0 {
				out[i] = course("alt-" + string(rune('a'+i)))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		records []map[string]any
		code    string
	}{
		{"over 200 records", many, "EXCEEDED_ID_LIMIT"},
		{"no attributes.type", []map[string]any{{ObfuscatedID: "a"}}, "INVALID_TYPE"},
		{"unknown type", []map[string]any{typed("Nope__c", map[string]any{"Name": "n"})}, "INVALID_TYPE"},
		{"unknown field", []map[string]any{course("a"), typed("Contact", map[string]any{"LastName": "x", "Nope__c": 1})}, "INVALID_FIELD"},
		{"eleven chunks", alternating(11), "INVALID_BATCH_SIZE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "composite/sobjects", map[string]any{"records": tc.records})
			if r.status != http.StatusBadRequest || r.errorCode(t) != tc.code {
				t.Fatalf("= %d %s, want 400 %s", r.status, r.body, tc.code)
			}
		})
	}
	if s.Count(objCourse) != 0 || s.Count("Contact") != 0 {
		t.Fatal("a refused request wrote rows")
	}
	if res, _ := c.create(false, alternating(10)...); len(res) != 10 || !res[9].Success {
		t.Fatalf("ten chunks = %+v, want accepted", res)
	}
}

func TestUpdateByIDWritesTheFieldsAndAnswers204(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	res, _ := c.create(false, typed("Contact", map[string]any{"LastName": "Hopper", "Email": "grace@example.com"}))
	id := res[0].ID

	r := c.do("PATCH", "sobjects/Contact/"+id[:15], map[string]any{"FirstName": "Grace", "Email": nil})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("update = %d %q, want 204 and no body", r.status, r.body)
	}
	rec, _ := s.RecordByExternalID("Contact", "Id", id)
	if rec["FirstName"] != "Grace" || rec["LastName"] != "Hopper" || rec["Email"] != nil || rec["Name"] != "Grace Hopper" {
		t.Errorf("after update: %v", rec)
	}
	if log := s.WriteLog(); len(log) != 2 || log[1] != (Write{SObject: "Contact", ID: id}) {
		t.Errorf("WriteLog = %+v, want the create then an update of %s", log, id)
	}

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		status     int
		code       string
	}{
		{"unknown id", "sobjects/Contact/" + newID("003", 99), map[string]any{"FirstName": "X"}, 404, "NOT_FOUND"},
		{"another object's id", "sobjects/" + objCourse + "/" + id, map[string]any{"Name": "X"}, 404, "NOT_FOUND"},
		{"bad value", "sobjects/Contact/" + id, map[string]any{"LastName": strings.Repeat("x", 81)}, 400, "STRING_TOO_LONG"},
		{"required field cleared", "sobjects/Contact/" + id, map[string]any{"LastName": nil}, 400, "REQUIRED_FIELD_MISSING"},
		{"unknown field", "sobjects/Contact/" + id, map[string]any{"Nope__c": 1}, 400, "INVALID_FIELD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("PATCH", tc.path, tc.body)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if rec, _ := s.RecordByExternalID("Contact", "Id", id); rec["LastName"] != "Hopper" || len(s.WriteLog()) != 2 {
		t.Errorf("a refused update changed the record: %v", rec)
	}
}

func TestRequestURIsOverTheLimitAre414AndSpendNothing(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	// The limits resource ignores its query string, so padding it sets the URI length exactly.
	base := "/services/data/" + testVersion + "/limits?pad="
	padded := func(n int) string { return base + strings.Repeat("x", n-len(base)) }
	s.InjectFault(Fault{PathContains: "limits", Status: http.StatusServiceUnavailable, ErrorCode: "SERVER_UNAVAILABLE"})

	r := c.do("GET", padded(maxRequestURI+1), nil)
	if r.status != http.StatusRequestURITooLong || r.errorCode(t) != "URI_TOO_LONG" {
		t.Fatalf("a %d-byte URI = %d %s, want 414 URI_TOO_LONG", maxRequestURI+1, r.status, r.body)
	}
	if used, _ := s.APIUsage(); used != 0 {
		t.Errorf("a refused URI spent %d API requests", used)
	}
	// The injected 503 is still waiting: the 414 came before it.
	if r := c.do("GET", padded(maxRequestURI), nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("the next call = %d %s, want the injected 503", r.status, r.body)
	}
	if r := c.do("GET", padded(maxRequestURI), nil); r.status != http.StatusOK {
		t.Errorf("a %d-byte URI = %d %s, want 200", maxRequestURI, r.status, r.body)
	}
	var got int
	for _, st := range s.Calls() {
		if st.Endpoint == "GET limits" && st.Status == http.StatusRequestURITooLong {
			got = st.Count
		}
	}
	if got != 1 {
		t.Errorf("Calls = %+v, want one 414 on GET limits", s.Calls())
	}
}
