package salesforcesim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEveryCountedCallCarriesLimitInfoAndTheDailyCapAnswers403(t *testing.T) {
	s := startSim(t, Config{DailyLimit: 3})
	c := newClient(t, s)
	for i := 1; i <= 3; i++ {
		r := c.do("GET", "limits", nil)
		if want := fmt.Sprintf("api-usage=%d/3", i); r.status != 200 || r.header.Get("Sforce-Limit-Info") != want {
			t.Fatalf("call %d = %d %q, want %q", i, r.status, r.header.Get("Sforce-Limit-Info"), want)
		}
	}
	r := c.do("PATCH", "composite/sobjects/"+objStudent+"/"+ObfuscatedID, upsertBody(false, objStudent, student("x")))
	var errs []apiError
	r.json(t, &errs)
	if r.status != http.StatusForbidden || errs[0].ErrorCode != "REQUEST_LIMIT_EXCEEDED" ||
		errs[0].Message != "TotalRequests Limit exceeded." || r.header.Get("Sforce-Limit-Info") != "api-usage=3/3" {
		t.Fatalf("over the cap = %d %q %s", r.status, r.header.Get("Sforce-Limit-Info"), r.body)
	}
	if s.Count(objStudent) != 0 {
		t.Fatalf("a refused call wrote")
	}
	if used, limit := s.APIUsage(); used != 3 || limit != 3 {
		t.Fatalf("APIUsage = %d/%d", used, limit)
	}
	// The versions list is free and needs no session.
	r = (&client{t: t, sim: s}).do("GET", "/services/data/", nil)
	var versions []map[string]string
	r.json(t, &versions)
	if r.status != 200 || r.header.Get("Sforce-Limit-Info") != "" || len(versions) == 0 || versions[0]["version"] != "46.0" {
		t.Fatalf("versions = %d %q %s", r.status, r.header.Get("Sforce-Limit-Info"), r.body)
	}
}

func TestLimitsResourceReportsRemainingRequests(t *testing.T) {
	s := startSim(t, Config{DailyLimit: 500})
	c := newClient(t, s)
	c.do("GET", "sobjects", nil)
	var limits map[string]limit
	c.do("GET", "limits/", nil).json(t, &limits) // the documented spelling has a trailing slash
	if got := limits["DailyApiRequests"]; got != (limit{Max: 500, Remaining: 498}) {
		t.Fatalf("DailyApiRequests = %+v", got)
	}
	if got := limits["DailyBulkApiBatches"]; got.Max != 15000 {
		t.Fatalf("DailyBulkApiBatches = %+v", got)
	}
}

func TestUnsupportedVersionsAndUnknownPathsAre404(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	for _, path := range []string{"/services/data/v45.0/limits", "/services/data/v99.0/limits", "/services/data/latest/limits",
		"/services/data/" + testVersion + "/nothing/here"} {
		if r := c.do("GET", path, nil); r.status != http.StatusNotFound || r.errorCode(t) != "NOT_FOUND" {
			t.Fatalf("%s = %d %s", path, r.status, r.body)
		}
	}
	if used, _ := s.APIUsage(); used != 0 {
		t.Fatalf("404s spent %d API requests", used)
	}
}

func TestInjectedFaultsFireExactlyAsOftenAsAsked(t *testing.T) {
	s := startSim(t, Config{})
	c := newClient(t, s)
	s.InjectFault(Fault{PathContains: "composite/sobjects", Status: 503, ErrorCode: "SERVER_UNAVAILABLE", Times: 2})
	s.InjectFault(Fault{PathContains: "oauth2/token", Status: 500, ErrorCode: "server_error"})
	for i := range 3 {
		r := c.do("PATCH", "composite/sobjects/"+objStudent+"/"+ObfuscatedID, upsertBody(false, objStudent, student("x")))
		want := 503
		if i == 2 {
			want = 200
		}
		if r.status != want {
			t.Fatalf("call %d = %d %s, want %d", i, r.status, r.body, want)
		}
		if i < 2 && r.errorCode(t) != "SERVER_UNAVAILABLE" {
			t.Fatalf("fault body = %s", r.body)
		}
	}
	if r := c.do("GET", "limits", nil); r.status != 200 {
		t.Fatalf("a fault leaked onto another path: %d", r.status)
	}
	_, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", "x"))
	if status != 500 || bad.Error != "server_error" {
		t.Fatalf("token fault = %d %+v", status, bad)
	}
	var got503 int
	for _, cs := range s.Calls() {
		if cs.Endpoint == "PATCH composite/sobjects" && cs.Status == 503 {
			got503 = cs.Count
		}
	}
	if got503 != 2 {
		t.Fatalf("Calls = %+v, want two 503s on PATCH composite/sobjects", s.Calls())
	}
}

func TestFaultRateAnswers503OnDataCalls(t *testing.T) {
	s := startSim(t, Config{FaultRate: 0.3, Seed: 3})
	c := newClient(t, s)
	failed := 0
	for range 200 {
		switch r := c.do("GET", "limits", nil); r.status {
		case 503:
			failed++
		case 200:
		default:
			t.Fatalf("unexpected %d", r.status)
		}
	}
	if failed < 30 || failed > 90 {
		t.Fatalf("%d of 200 calls failed at FaultRate 0.3", failed)
	}
}

func TestLatencyHoldsEveryRequestBack(t *testing.T) {
	s := startSim(t, Config{Latency: time.Hour})
	tok := s.MintTokens("")
	req, _ := http.NewRequest("GET", s.InstanceURL()+"/services/data/"+testVersion+"/limits", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	hc := &http.Client{Timeout: 100 * time.Millisecond}
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a call answered %d despite an hour of latency", resp.StatusCode)
	}
	// Close must not wait out the latency of the abandoned request.
}

func TestStartRefusesAnInconsistentSchema(t *testing.T) {
	schema := DefaultSchema()
	schema = schema[1:] // drop Contact, which the Student and Progress lookups point at
	s, err := Start(Config{Schema: schema}, "127.0.0.1:0")
	if err == nil {
		s.Close()
		t.Fatal("Start accepted lookups to a missing object")
	}
	if !strings.Contains(err.Error(), "skilljar__Contact__c") {
		t.Fatalf("error = %v, want it to name the lookup", err)
	}
}
