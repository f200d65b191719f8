package salesforcesim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// routes is a ServeMux that also names each pattern's endpoint for Calls.
type routes struct {
	mux    *http.ServeMux
	labels map[string]string // pattern → endpoint label
}

func newRoutes() *routes {
	return &routes{mux: http.NewServeMux(), labels: make(map[string]string)}
}

func (rt *routes) handle(pattern, label string, h http.HandlerFunc) {
	rt.mux.HandleFunc(pattern, h)
	rt.labels[pattern] = label
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// maxRequestURI is the longest request URI (path and query) Salesforce serves; a longer
// one gets 414 (reference/salesforce.md, status codes).
const maxRequestURI = 16384

// host wraps one host's routes with what every request goes through: latency, the URI
// limit, injected faults, a JSON 404 for unknown paths on the instance, and the per-endpoint call count.
type host struct {
	sim      *Sim
	routes   *routes
	instance bool
}

func (h host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.instance && len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/") && r.URL.Path != "/services/data/" {
		// Salesforce documents several resources with a trailing slash (limits/,
		// successfulResults/) and answers both spellings.
		r.URL.Path = strings.TrimSuffix(r.URL.Path, "/")
		r.URL.RawPath = ""
	}
	s := h.sim
	_, pattern := h.routes.mux.Handler(r)
	data := h.instance && strings.Contains(pattern, "{version}")
	if data && s.cfg.ConcurrentLimit > 0 {
		done, ok := s.admit()
		if !ok {
			s.mu.Lock()
			s.calls[callKey{h.routes.labels[pattern], http.StatusForbidden}]++
			s.mu.Unlock()
			// The concurrent long-running request limit (reference/salesforce.md §4.2, §8.6).
			writeAPIError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED",
				"ConcurrentRequests (Concurrent API Requests) Limit exceeded.")
			return
		}
		defer done()
	}
	s.delay(r.Context())
	label := h.routes.labels[pattern]
	if label == "" {
		label = r.Method + " (no route)"
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.mu.Lock()
		s.calls[callKey{label, rec.status}]++
		s.mu.Unlock()
	}()

	if len(r.RequestURI) > maxRequestURI {
		// Refused at the door, before faults or the API allocation see it. The status and the
		// limit are documented; the body's errorCode is UNCONFIRMED.
		writeAPIError(rec, http.StatusRequestURITooLong, "URI_TOO_LONG",
			fmt.Sprintf("The request URI is %d bytes long; the limit is %d bytes", len(r.RequestURI), maxRequestURI))
		return
	}
	s.mu.Lock()
	f := s.takeFault(r.URL.Path)
	random503 := f == nil && data && s.chance(s.cfg.FaultRate)
	s.mu.Unlock()
	switch {
	case f != nil && h.instance:
		writeAPIError(rec, f.Status, f.ErrorCode, f.Message)
	case f != nil:
		writeOAuthError(rec, f.Status, f.ErrorCode, f.Message)
	case random503:
		writeAPIError(rec, http.StatusServiceUnavailable, "SERVER_UNAVAILABLE", "Server is unavailable, please retry")
	case pattern == "" && h.instance:
		writeAPIError(rec, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	default:
		h.routes.mux.ServeHTTP(rec, r)
	}
}

// admit counts a data API request in flight, refusing it while ConcurrentLimit others have
// run longer than LongRunning; done ends it.
func (s *Sim) admit() (done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, long := time.Now(), 0
	for _, started := range s.inflight {
		if now.Sub(started) >= s.cfg.LongRunning {
			long++
		}
	}
	if long >= s.cfg.ConcurrentLimit {
		return nil, false
	}
	id := s.nextSeq()
	s.inflight[id] = now
	return func() {
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
	}, true
}

// delay sleeps for the configured latency plus jitter, or until the client gives up.
func (s *Sim) delay(ctx context.Context) {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
		s.mu.Unlock()
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// apiError is one element of the JSON array every REST error body is.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, []apiError{{Message: message, ErrorCode: code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client hung up; nothing to do
}
