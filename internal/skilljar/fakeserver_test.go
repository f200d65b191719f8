package skilljar_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/skilljar"
)

// These tests need answers the simulator never gives: hostile next links, a server that
// echoes credentials, HTTP-date Retry-After values.

const secretKey = "sk-live-secret-0123456789"

func TestNextLinkToAnotherHostIsRefusedWithoutSendingTheKey(t *testing.T) {
	t.Parallel()
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
	}))
	defer foreign.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"count": 2, "next": foreign.URL + "/v1/domains?page=2", "previous": nil,
			"results": []map[string]string{{"id": "d1", "name": "learn.example.com"}},
		})
	}))
	defer api.Close()
	c := newClient(t, skilljar.Config{BaseURL: api.URL, APIKey: secretKey})

	_, err := c.Domains(context.Background())
	var foreignErr *skilljar.ForeignURLError
	if !errors.As(err, &foreignErr) {
		t.Fatalf("Domains with a foreign next link = %v, want *ForeignURLError", err)
	}
	if !strings.Contains(err.Error(), foreign.URL) || !strings.Contains(err.Error(), api.URL+"/v1/domains") {
		t.Errorf("error %q should name the foreign link and the page that carried it", err)
	}
	if foreignHits.Load() != 0 {
		t.Errorf("the foreign host received %d requests", foreignHits.Load())
	}

	// A stored page URL (a checkpoint) is held to the same rule.
	_, err = c.DomainUsers(context.Background(), "x", foreign.URL+"/v1/domains/x/users?page=3")
	if !errors.As(err, &foreignErr) || foreignHits.Load() != 0 {
		t.Fatalf("DomainUsers on a foreign URL = %v (foreign hits %d), want a refusal", err, foreignHits.Load())
	}
}

func TestAnEchoedKeyIsRedactedFromErrors(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"detail": "bad key " + user})
	}))
	defer api.Close()
	c := newClient(t, skilljar.Config{BaseURL: api.URL, APIKey: secretKey})

	_, err := c.Courses(context.Background(), "")
	var apiErr *skilljar.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("Courses = %v, want a 400 *APIError", err)
	}
	if strings.Contains(err.Error(), secretKey) {
		t.Fatalf("error leaks the API key: %v", err)
	}
}

func TestRetryAfterAsAnHTTPDateIsHonoured(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var firstAt, secondAt atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			firstAt.Store(time.Now().UnixNano())
			// HTTP dates have one-second resolution: two seconds ahead is at least one.
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		secondAt.Store(time.Now().UnixNano())
		_, _ = w.Write([]byte(`{"count":0,"next":null,"previous":null,"results":[]}`))
	}))
	defer api.Close()
	c := newClient(t, skilljar.Config{BaseURL: api.URL, APIKey: secretKey})

	if _, err := c.Courses(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if gap := time.Duration(secondAt.Load() - firstAt.Load()); gap < time.Second {
		t.Fatalf("retried %v after a 429 whose Retry-After date was at least 1s away", gap)
	}
}

func TestUserProgressAlsoReadsAPagedEnvelope(t *testing.T) {
	t.Parallel()
	var api *httptest.Server
	api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			_, _ = w.Write([]byte(`{"count":2,"next":null,"previous":null,"results":[{"published_course_id":"pc2"}]}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"count": 2, "next": api.URL + r.URL.Path + "?page=2", "previous": nil,
			"results": []map[string]string{{"published_course_id": "pc1"}},
		})
	}))
	defer api.Close()
	c := newClient(t, skilljar.Config{BaseURL: api.URL, APIKey: secretKey})

	rows, err := c.UserProgress(context.Background(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].PublishedCourseID != "pc1" || rows[1].PublishedCourseID != "pc2" {
		t.Fatalf("UserProgress over a two-page envelope = %+v, want pc1 then pc2", rows)
	}
}

func TestNewNamesTheFieldAtFault(t *testing.T) {
	t.Parallel()
	if _, err := skilljar.New(skilljar.Config{APIKey: "k"}); err != nil {
		t.Fatalf("a key alone should be a complete config: %v", err)
	}
	for _, tc := range []struct {
		cfg   skilljar.Config
		field string
	}{
		{skilljar.Config{}, "APIKey"},
		{skilljar.Config{APIKey: "k", BaseURL: "api.skilljar.com"}, "BaseURL"},
		{skilljar.Config{APIKey: "k", BaseURL: "https://api.skilljar.com/v1"}, "BaseURL"},
		{skilljar.Config{APIKey: "k", BaseURL: "https://" + secretKey + "@api.skilljar.com"}, "BaseURL"},
		{skilljar.Config{APIKey: "k", PageSize: 5000}, "PageSize"},
		{skilljar.Config{APIKey: "k", RequestTimeout: -time.Second}, "RequestTimeout"},
		{skilljar.Config{APIKey: "k", MaxRetries: -2}, "MaxRetries"},
	} {
		_, err := skilljar.New(tc.cfg)
		if err == nil || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "skilljar: invalid config: "), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg.BaseURL, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), secretKey) {
			t.Errorf("config error leaks a credential: %v", err)
		}
	}
}

func newClient(t *testing.T, cfg skilljar.Config) *skilljar.Client {
	t.Helper()
	c, err := skilljar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
