package salesforcesim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// seedForQueries writes five students and four progress rows through the API.
func seedForQueries(t *testing.T, c *client) {
	t.Helper()
	c.upsert(objStudent, false,
		student("s-1", studentEmail, "ann@example.com", "skilljar__Last_Name__c", "O'Brien"),
		student("s-2", studentEmail, "Bob@Example.com", "skilljar__Last_Name__c", `Back\slash`),
		student("s-3", "skilljar__Last_Name__c", "Zoë"),
		student("s-4", studentEmail, "dan_x@example.com", "skilljar__Last_Name__c", "100% sure"),
		student("s-5", studentEmail, "eve@example.org"))
	c.upsert(objCourse, false, map[string]any{ObfuscatedID: "c-1", "skilljar__Title__c": "Go"})
	progress := func(ext, stu string, score any, completed any, status any) map[string]any {
		return map[string]any{ObfuscatedID: ext, studentRel: map[string]any{ObfuscatedID: stu},
			"skilljar__Score__c": score, "skilljar__Completed_At__c": completed, "skilljar__Success_Status__c": status,
			"skilljar__Active__c": score != nil}
	}
	res := c.upsert(objProgress, false,
		progress("p-1", "s-1", 90, "2024-01-10T00:00:00Z", "PASSED"),
		progress("p-2", "s-1", 40, "2024-02-10T00:00:00Z", "FAILED"),
		progress("p-3", "s-2", nil, nil, nil),
		progress("p-4", "s-3", 75.5, "2024-03-10T12:30:00.000+0000", "PASSED"))
	for _, r := range res {
		if !r.Success {
			t.Fatalf("seed: %+v", r)
		}
	}
	c.upsert(objProgress, false, map[string]any{ObfuscatedID: "p-1", "skilljar__Course__r": map[string]any{ObfuscatedID: "c-1"}})
}

type queryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

func (c *client) ids(soql string) string {
	c.t.Helper()
	r := c.query(soql)
	if r.status != http.StatusOK {
		c.t.Fatalf("%s = %d %s", soql, r.status, r.body)
	}
	var res queryResult
	r.json(c.t, &res)
	var ids []string
	for _, rec := range res.Records {
		ids = append(ids, fmt.Sprint(rec[ObfuscatedID]))
	}
	return strings.Join(ids, ",")
}

func TestSOQLFiltersSortsAndLimitsLikeSalesforce(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	seedForQueries(t, c)
	const fromStudents = "SELECT skilljar__Obfuscated_Id__c FROM skilljar__Student__c "
	const fromProgress = "SELECT skilljar__Obfuscated_Id__c FROM skilljar__Course_Progress__c "
	cases := []struct{ soql, want string }{
		{fromStudents, "s-1,s-2,s-3,s-4,s-5"},
		{fromStudents + "WHERE skilljar__Email__c = 'BOB@example.COM'", "s-2"},
		{fromStudents + "WHERE skilljar__Email__c != 'bob@example.com'", "s-1,s-3,s-4,s-5"},
		{fromStudents + "WHERE skilljar__Email__c = null", "s-3"},
		{fromStudents + "WHERE skilljar__Email__c != NULL", "s-1,s-2,s-4,s-5"},
		{fromStudents + "WHERE skilljar__Obfuscated_Id__c IN ('S-1', 's-4', 'nope')", "s-1,s-4"},
		{fromStudents + "WHERE skilljar__Obfuscated_Id__c NOT IN ('s-1','s-4')", "s-2,s-3,s-5"},
		{fromStudents + "WHERE skilljar__Email__c LIKE '%@example.com'", "s-1,s-2,s-4"},
		{fromStudents + `WHERE skilljar__Email__c LIKE 'dan\_%'`, "s-4"},
		{fromStudents + `WHERE skilljar__Email__c LIKE '___@%'`, "s-1,s-2,s-5"},
		{fromStudents + `WHERE skilljar__Last_Name__c LIKE '100\%%'`, "s-4"},
		{fromStudents + `WHERE skilljar__Last_Name__c = 'O\'Brien'`, "s-1"},
		{fromStudents + `WHERE skilljar__Last_Name__c = 'Back\\slash'`, "s-2"},
		{fromStudents + `WHERE skilljar__Last_Name__c = 'Zo\u00EB'`, "s-3"},
		{fromStudents + "WHERE skilljar__Obfuscated_Id__c > 's-2' AND skilljar__Obfuscated_Id__c <= 's-4'", "s-3,s-4"},
		{fromStudents + "WHERE skilljar__Obfuscated_Id__c = 's-1' OR skilljar__Obfuscated_Id__c = 's-5' OR skilljar__Email__c = null", "s-1,s-3,s-5"},
		{fromStudents + "WHERE (skilljar__Obfuscated_Id__c = 's-1' OR skilljar__Obfuscated_Id__c = 's-2') AND skilljar__Email__c LIKE 'b%'", "s-2"},
		{fromStudents + "WHERE NOT skilljar__Email__c LIKE '%.com'", "s-3,s-5"},
		{fromStudents + "WHERE NOT (skilljar__Obfuscated_Id__c = 's-1' OR skilljar__Obfuscated_Id__c = 's-2')", "s-3,s-4,s-5"},
		{fromStudents + "ORDER BY skilljar__Obfuscated_Id__c DESC LIMIT 2", "s-5,s-4"},
		{fromStudents + "ORDER BY skilljar__Email__c", "s-3,s-1,s-2,s-4,s-5"},
		{fromStudents + "ORDER BY skilljar__Email__c ASC NULLS LAST", "s-1,s-2,s-4,s-5,s-3"},
		{fromStudents + "ORDER BY skilljar__Email__c DESC", "s-5,s-4,s-2,s-1,s-3"},
		{fromStudents + "ORDER BY skilljar__Obfuscated_Id__c LIMIT 2 OFFSET 1", "s-2,s-3"},
		{fromProgress + "WHERE skilljar__Score__c >= 75", "p-1,p-4"},
		{fromProgress + "WHERE skilljar__Score__c < 75.5", "p-2"},
		{fromProgress + "WHERE skilljar__Active__c = false", "p-3"},
		{fromProgress + "WHERE skilljar__Completed_At__c > 2024-02-10T00:00:00Z", "p-4"},
		{fromProgress + "WHERE skilljar__Completed_At__c <= 2024-02-10T01:00:00+01:00", "p-1,p-2"},
		{fromProgress + "WHERE skilljar__Success_Status__c IN ('PASSED', null)", "p-1,p-3,p-4"},
		{fromProgress + "WHERE skilljar__Student__r.skilljar__Obfuscated_Id__c = 'S-1'", "p-1,p-2"},
		{fromProgress + "WHERE skilljar__Course__r.skilljar__Title__c = null", "p-2,p-3,p-4"},
		{fromProgress + "ORDER BY skilljar__Student__r.skilljar__Obfuscated_Id__c DESC, skilljar__Score__c ASC", "p-4,p-3,p-2,p-1"},
		{"select skilljar__obfuscated_id__c from SKILLJAR__STUDENT__C where SKILLJAR__EMAIL__C like '%ORG'", "s-5"},
	}
	for _, tc := range cases {
		if got := c.ids(tc.soql); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.soql, got, tc.want)
		}
	}
}

func TestSOQLRendersRelationshipsAndIdsLikeTheRESTAPI(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	seedForQueries(t, c)
	stu, _ := s.RecordByExternalID(objStudent, ObfuscatedID, "s-1")
	r := c.query("SELECT Id, skilljar__Student__r.skilljar__Obfuscated_Id__c, skilljar__Course__r.skilljar__Title__c, " +
		"skilljar__Completed_At__c, skilljar__Score__c FROM skilljar__Course_Progress__c " +
		"WHERE skilljar__Student__c = '" + stu["Id"].(string)[:15] + "' ORDER BY skilljar__Score__c DESC")
	var res queryResult
	r.json(t, &res)
	if res.TotalSize != 2 || !res.Done || res.NextRecordsURL != "" {
		t.Fatalf("result = %s", r.body)
	}
	first := res.Records[0]
	attrs := first["attributes"].(map[string]any)
	if attrs["type"] != objProgress || !strings.HasPrefix(attrs["url"].(string), "/services/data/"+testVersion+"/sobjects/"+objProgress+"/a04") {
		t.Fatalf("attributes = %v", attrs)
	}
	parent := first[studentRel].(map[string]any)
	if parent[ObfuscatedID] != "s-1" || parent["attributes"].(map[string]any)["type"] != objStudent {
		t.Fatalf("relationship = %v", parent)
	}
	if first["skilljar__Course__r"].(map[string]any)["skilljar__Title__c"] != "Go" || res.Records[1]["skilljar__Course__r"] != nil {
		t.Fatalf("course relationships = %v / %v, want an object then null", first["skilljar__Course__r"], res.Records[1]["skilljar__Course__r"])
	}
	if first["skilljar__Completed_At__c"] != "2024-01-10T00:00:00.000+0000" || first["skilljar__Score__c"] != 90.0 {
		t.Fatalf("values = %v", first)
	}
	// Keys come in query order with attributes first.
	if body := string(r.body); strings.Index(body, `"attributes"`) > strings.Index(body, `"Id"`) ||
		strings.Index(body, `"Id"`) > strings.Index(body, `"skilljar__Student__r"`) {
		t.Fatalf("key order = %s", body)
	}

	var count queryResult
	c.query("SELECT COUNT() FROM skilljar__Course_Progress__c WHERE skilljar__Success_Status__c = 'PASSED'").json(t, &count)
	if count.TotalSize != 2 || !count.Done || count.Records == nil || len(count.Records) != 0 {
		t.Fatalf("COUNT() = %+v", count)
	}
}

func TestSOQLRefusesWhatItDoesNotUnderstand(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	cases := []struct{ soql, code string }{
		{"SELECT FROM skilljar__Student__c", "MALFORMED_QUERY"},
		{"SELECT Id skilljar__Student__c", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name = 'bad \\x escape'", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name = 'a\\_b'", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name = 'unterminated", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name < null", "MALFORMED_QUERY"},
		{"SELECT COUNT() FROM skilljar__Student__c ORDER BY Name", "MALFORMED_QUERY"},
		{"SELECT COUNT(Id) FROM skilljar__Student__c", "MALFORMED_QUERY"},
		{"SELECT Id, Id FROM skilljar__Student__c", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c LIMIT x", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c GROUP BY Name", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Name = \"double\"", "MALFORMED_QUERY"},
		{"SELECT Id FROM skilljar__Student__c WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"},
		{"SELECT Nope__c FROM skilljar__Student__c", "INVALID_FIELD"},
		{"SELECT Nope__r.Name FROM skilljar__Student__c", "INVALID_FIELD"},
		{"SELECT Id FROM skilljar__Course_Progress__c WHERE skilljar__Score__c = '10'", "INVALID_FIELD"},
		{"SELECT Id FROM skilljar__Course_Progress__c WHERE skilljar__Completed_At__c > '2024-01-01'", "INVALID_FIELD"},
		{"SELECT Id FROM Nope__c", "INVALID_TYPE"},
		{"SELECT Id FROM skilljar__Student__c OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"},
	}
	for _, tc := range cases {
		r := c.query(tc.soql)
		if r.status != http.StatusBadRequest || r.errorCode(t) != tc.code {
			t.Errorf("%s = %d %s, want 400 %s", tc.soql, r.status, r.body, tc.code)
		}
	}
	if r := c.do("GET", "query", nil); r.status != 400 || r.errorCode(t) != "MALFORMED_QUERY" {
		t.Errorf("query without q = %d %s", r.status, r.body)
	}
}

func TestQueryPagesAt2000WithNextRecordsURL(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	for i := 0; i < 4500; i += 200 {
		var batch []map[string]any
		for j := i; j < min(i+200, 4500); j++ {
			batch = append(batch, student(fmt.Sprintf("page-%05d", j)))
		}
		c.upsert(objStudent, false, batch...)
	}
	var page queryResult
	c.query("SELECT Id, skilljar__Obfuscated_Id__c FROM skilljar__Student__c ORDER BY skilljar__Obfuscated_Id__c").json(t, &page)
	seen := make(map[string]bool)
	var sizes []int
	for {
		if page.TotalSize != 4500 {
			t.Fatalf("totalSize = %d", page.TotalSize)
		}
		sizes = append(sizes, len(page.Records))
		for _, r := range page.Records {
			id := r[ObfuscatedID].(string)
			if seen[id] || id != fmt.Sprintf("page-%05d", len(seen)) {
				t.Fatalf("record %s out of order or repeated after %d", id, len(seen))
			}
			seen[id] = true
		}
		if page.Done {
			if page.NextRecordsURL != "" {
				t.Fatalf("done page has nextRecordsUrl %q", page.NextRecordsURL)
			}
			break
		}
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/"+testVersion+"/query/01g") {
			t.Fatalf("nextRecordsUrl = %q", page.NextRecordsURL)
		}
		r := c.do("GET", page.NextRecordsURL, nil)
		if r.status != 200 {
			t.Fatalf("next page = %d %s", r.status, r.body)
		}
		page = queryResult{}
		r.json(t, &page)
	}
	if fmt.Sprint(sizes) != "[2000 2000 500]" {
		t.Fatalf("page sizes = %v", sizes)
	}
	if r := c.do("GET", "query/01gBOGUS-2000", nil); r.status != 400 || r.errorCode(t) != "INVALID_QUERY_LOCATOR" {
		t.Fatalf("bad locator = %d %s", r.status, r.body)
	}

	c.headers = map[string]string{"Sforce-Query-Options": "batchSize=500"}
	c.query("SELECT Id FROM skilljar__Student__c").json(t, &page)
	if len(page.Records) != 500 || page.Done {
		t.Fatalf("batchSize=500 gave %d records, done %v", len(page.Records), page.Done)
	}
}
