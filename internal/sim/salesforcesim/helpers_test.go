package salesforcesim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const testVersion = "v62.0"

// startSim runs a simulator on free loopback ports for one test.
func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	s, err := Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// apiErrors decodes a REST error array and returns its first error code.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var errs []apiError
	r.json(t, &errs)
	if len(errs) == 0 {
		t.Fatalf("empty error array: %s", r.body)
	}
	return errs[0].ErrorCode
}

// client calls the instance as an authorized app would.
type client struct {
	t       testing.TB
	sim     *Sim
	token   string
	headers map[string]string
}

func newClient(t testing.TB, s *Sim) *client {
	return &client{t: t, sim: s, token: s.MintTokens("api refresh_token").AccessToken}
}

// do sends a request to the instance; path is relative to /services/data/vNN.N/ unless it
// starts with a slash. A string body is sent as is, anything else as JSON.
func (c *client) do(method, path string, body any) response {
	c.t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = "/services/data/" + testVersion + "/" + path
	}
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		contentType = "text/csv"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.sim.InstanceURL()+path, rd)
	if err != nil {
		c.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", contentType)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	return send(c.t, req)
}

func (c *client) query(soql string) response {
	c.t.Helper()
	return c.do("GET", "query?q="+url.QueryEscape(soql), nil)
}

func send(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// upsertBody builds a collections request body.
func upsertBody(allOrNone bool, object string, records ...map[string]any) map[string]any {
	list := make([]map[string]any, len(records))
	for i, r := range records {
		rec := map[string]any{"attributes": map[string]any{"type": object}}
		for k, v := range r {
			rec[k] = v
		}
		list[i] = rec
	}
	return map[string]any{"allOrNone": allOrNone, "records": list}
}

// upsertResults sends a collections upsert by the package external id and decodes the
// per-record results.
func (c *client) upsert(object string, allOrNone bool, records ...map[string]any) []upsertResult {
	c.t.Helper()
	resp := c.do("PATCH", "composite/sobjects/"+object+"/"+ObfuscatedID, upsertBody(allOrNone, object, records...))
	if resp.status != http.StatusOK {
		c.t.Fatalf("upsert %s: %d %s", object, resp.status, resp.body)
	}
	var out []upsertResult
	resp.json(c.t, &out)
	if len(out) != len(records) {
		c.t.Fatalf("upsert %s: %d results for %d records", object, len(out), len(records))
	}
	return out
}

func student(ext string, fields ...any) map[string]any {
	r := map[string]any{ObfuscatedID: ext}
	for i := 0; i+1 < len(fields); i += 2 {
		r[fields[i].(string)] = fields[i+1]
	}
	return r
}
