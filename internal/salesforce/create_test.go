package salesforce_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sjbackfill/backfill/internal/salesforce"
)

// collectionsInsert answers POST composite/sobjects as Salesforce documents it: SaveResults in
// request order, per-record errors inside a 200. The simulator has no such route yet, so
// this stand-in pins the wire format; it refuses what Salesforce refuses (more than 200
// records, a record without attributes.type) and a missing LastName per record.
type collectionsInsert struct {
	mu      sync.Mutex
	batches []int
	bodies  []map[string]json.RawMessage
	next    int
	token   string // the bearer token accepted; others get 401 INVALID_SESSION_ID
}

func (f *collectionsInsert) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/services/data/v62.0/composite/sobjects" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]`)
		return
	}
	var body map[string]json.RawMessage
	var req struct {
		Records []map[string]any `json:"records"`
	}
	data, _ := io.ReadAll(r.Body)
	if json.Unmarshal(data, &body) != nil || json.Unmarshal(data, &req) != nil || len(req.Records) > 200 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `[{"message":"bad collection","errorCode":"INVALID_BATCH_SIZE"}]`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, len(req.Records))
	f.bodies = append(f.bodies, body)
	out := make([]map[string]any, len(req.Records))
	for i, rec := range req.Records {
		attrs, _ := rec["attributes"].(map[string]any)
		switch {
		case attrs["type"] != "Contact":
			out[i] = map[string]any{"success": false, "errors": []map[string]any{{"statusCode": "INVALID_TYPE", "message": "attributes.type missing", "fields": []string{}}}}
		case rec["LastName"] == nil:
			out[i] = map[string]any{"success": false, "errors": []map[string]any{{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": []string{"LastName"}}}}
		default:
			f.next++
			out[i] = map[string]any{"id": fmt.Sprintf("003%015d", f.next), "success": true, "errors": []any{}}
		}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// rotatingTokens starts with a token the server refuses and refreshes to the accepted one.
type rotatingTokens struct {
	mu        sync.Mutex
	creds     salesforce.Credentials
	fresh     string
	refreshes int
}

func (r *rotatingTokens) Token(context.Context) (salesforce.Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.creds, nil
}

func (r *rotatingTokens) Refresh(context.Context, salesforce.Credentials) (salesforce.Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes++
	r.creds.AccessToken = r.fresh
	return r.creds, nil
}

func TestCreateInsertsThroughCollectionsOf200AndKeepsOrder(t *testing.T) {
	fake := &collectionsInsert{token: "fresh"}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	tokens := &rotatingTokens{creds: salesforce.Credentials{AccessToken: "expired", InstanceURL: srv.URL}, fresh: "fresh"}
	client := newClient(t, fastConfig(tokens, nil))

	recs := make([]salesforce.Record, 450)
	for i := range recs {
		recs[i] = salesforce.Record{"Email": fmt.Sprintf("p%d@example.com", i), "LastName": fmt.Sprintf("P%d", i)}
	}
	delete(recs[201], "LastName")
	res, err := client.Create(context.Background(), "Contact", recs)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	if fmt.Sprint(fake.batches) != "[200 200 50]" {
		t.Errorf("batches %v, want [200 200 50]", fake.batches)
	}
	if tokens.refreshes != 1 {
		t.Errorf("%d refreshes, want one after the first 401", tokens.refreshes)
	}
	for _, body := range fake.bodies {
		if string(body["allOrNone"]) != "false" {
			t.Errorf("allOrNone = %s, want an explicit false", body["allOrNone"])
		}
	}
	if len(res) != len(recs) {
		t.Fatalf("%d results for %d records", len(res), len(recs))
	}
	ids := map[string]bool{}
	for i, r := range res {
		if i == 201 {
			if r.Success || r.Created || errorCode(r) != "REQUIRED_FIELD_MISSING" {
				t.Errorf("record 201 without LastName: %+v", r)
			}
			continue
		}
		if !r.Success || !r.Created || r.ID == "" || ids[r.ID] {
			t.Errorf("record %d: %+v", i, r)
		}
		ids[r.ID] = true
	}
	// Results follow input order: the fake numbers ids in the order it created them.
	if res[0].ID != "003000000000000001" || res[449].ID != "003000000000000449" {
		t.Errorf("first and last ids %s, %s: results out of order", res[0].ID, res[449].ID)
	}
	if _, ok := recs[0]["attributes"]; ok {
		t.Error("Create changed the caller's record")
	}
}

func TestCreateRefusesAnSObjectThatIsNotAnAPIName(t *testing.T) {
	fake := &collectionsInsert{token: "t"}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := newClient(t, fastConfig(salesforce.StaticTokens(salesforce.Credentials{AccessToken: "t", InstanceURL: srv.URL}), nil))
	if _, err := client.Create(context.Background(), "Contact/../x", []salesforce.Record{{"LastName": "x"}}); err == nil {
		t.Error("Create accepted a path as an sobject name")
	}
	if len(fake.batches) != 0 {
		t.Errorf("%d calls made for a refused name", len(fake.batches))
	}
}
