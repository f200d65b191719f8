package contacts_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sjbackfill/backfill/internal/contacts"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// front stands between the client and the simulated instance and fills two gaps of the
// simulator: it enforces Salesforce's request-URI limit with a 414, and it serves sObject
// Collections insert (POST composite/sobjects) by creating each record through the
// simulator's POST sobjects/{type}, which applies the same validation to one record. It
// also measures the queries that pass.
type front struct {
	sim   *salesforcesim.Sim
	proxy *httputil.ReverseProxy

	mu      sync.Mutex
	queries int
	longest int // longest query request URI seen, in bytes
}

var collectionsInsertPath = regexp.MustCompile(`^/services/data/(v\d+\.\d)/composite/sobjects$`)

func startFront(t testing.TB, sim *salesforcesim.Sim) (*front, string) {
	t.Helper()
	target, err := url.Parse(sim.InstanceURL())
	if err != nil {
		t.Fatal(err)
	}
	f := &front{sim: sim, proxy: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.RequestURI) > contacts.DefaultMaxURILength {
		w.WriteHeader(http.StatusRequestURITooLong)
		fmt.Fprint(w, "<html><body>414 Request-URI Too Long</body></html>")
		return
	}
	if m := collectionsInsertPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		f.insert(w, r, m[1])
		return
	}
	if strings.HasSuffix(r.URL.Path, "/query") {
		f.mu.Lock()
		f.queries++
		f.longest = max(f.longest, len(r.RequestURI))
		f.mu.Unlock()
	}
	f.proxy.ServeHTTP(w, r)
}

func (f *front) stats() (queries, longest int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries, f.longest
}

type saveResult struct {
	ID      string           `json:"id,omitempty"`
	Success bool             `json:"success"`
	Errors  []map[string]any `json:"errors"`
}

// insert answers a collections insert with one SaveResult per record, in order.
func (f *front) insert(w http.ResponseWriter, r *http.Request, version string) {
	var req struct {
		Records []map[string]any `json:"records"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Records) > 200 {
		http.Error(w, `[{"errorCode":"JSON_PARSER_ERROR","message":"bad collection"}]`, http.StatusBadRequest)
		return
	}
	out := make([]saveResult, len(req.Records))
	for i, rec := range req.Records {
		attrs, _ := rec["attributes"].(map[string]any)
		typ, _ := attrs["type"].(string)
		delete(rec, "attributes")
		body, _ := json.Marshal(rec)
		one, err := http.NewRequest(http.MethodPost, f.sim.InstanceURL()+"/services/data/"+version+"/sobjects/"+typ, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		one.Header.Set("Authorization", r.Header.Get("Authorization"))
		one.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(one)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			_ = json.Unmarshal(data, &out[i])
		case http.StatusBadRequest:
			var errs []struct {
				ErrorCode string   `json:"errorCode"`
				Message   string   `json:"message"`
				Fields    []string `json:"fields"`
			}
			_ = json.Unmarshal(data, &errs)
			for _, e := range errs {
				out[i].Errors = append(out[i].Errors, map[string]any{"statusCode": e.ErrorCode, "message": e.Message, "fields": e.Fields})
			}
		default: // a whole-request failure (401, 403, 503) is the collection's answer too
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(data)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
