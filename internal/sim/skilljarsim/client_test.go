package skilljarsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// apiClient is a minimal Skilljar v1 client written from reference/skilljar.md alone: HTTP
// Basic auth with the key as username and an empty password, JSON in, next URLs followed
// verbatim.
type apiClient struct {
	t    testing.TB
	base string
	key  string
	hc   *http.Client
}

func start(t testing.TB, cfg skilljarsim.Config) *skilljarsim.Sim {
	t.Helper()
	s, err := skilljarsim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClient(t testing.TB, s *skilljarsim.Sim) *apiClient {
	return &apiClient{t: t, base: s.URL(), key: s.APIKey(), hc: &http.Client{}}
}

// do sends an authenticated GET; target is a path under the base URL or an absolute URL.
func (c *apiClient) do(target string) (*http.Response, []byte, error) {
	if !strings.HasPrefix(target, "http") {
		target = c.base + target
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	req.SetBasicAuth(c.key, "")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// get returns the status and body, failing the test on a transport error.
func (c *apiClient) get(target string) (*http.Response, []byte) {
	c.t.Helper()
	resp, body, err := c.do(target)
	if err != nil {
		c.t.Fatalf("GET %s: %v", target, err)
	}
	return resp, body
}

// getJSON decodes a 200 answer into v.
func (c *apiClient) getJSON(target string, v any) {
	c.t.Helper()
	resp, body := c.get(target)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: status %d: %s", target, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("GET %s: decode: %v\n%s", target, err, body)
	}
}

// walk follows next from the first page until it is null and returns every result. When
// the envelope carries a count, the number of results must match it.
func walk[T any](c *apiClient, path string) []T {
	c.t.Helper()
	var out []T
	count := -1
	for next, pages := path, 0; next != ""; pages++ {
		if pages > 10_000 {
			c.t.Fatalf("walk %s: no end after %d pages", path, pages)
		}
		var env struct {
			Count   *int    `json:"count"`
			Next    *string `json:"next"`
			Results []T     `json:"results"`
		}
		c.getJSON(next, &env)
		if env.Count != nil && count < 0 {
			count = *env.Count
		}
		out = append(out, env.Results...)
		next = ""
		if env.Next != nil {
			next = *env.Next
		}
	}
	if count >= 0 && count != len(out) {
		c.t.Errorf("walk %s: count says %d, pages held %d", path, count, len(out))
	}
	return out
}

// detailOf is the message of a {"detail": "..."} error body.
func detailOf(t testing.TB, body []byte) string {
	t.Helper()
	var e struct {
		Detail *string `json:"detail"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Detail == nil {
		t.Fatalf("not a {\"detail\": ...} body: %q", body)
	}
	return *e.Detail
}
