package skilljarsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is a fully rendered answer. Handlers return one instead of writing, so the call is
// recorded and faults are applied before the client can see anything.
type response struct {
	status      int
	contentType string
	header      map[string]string
	body        []byte
}

func jsonResponse(status int, v any) response {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // DRF's renderer leaves <, > and & alone
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("skilljarsim: render %T: %v", v, err)) // wire types always encode
	}
	return response{status: status, contentType: "application/json", body: bytes.TrimSuffix(b.Bytes(), []byte("\n"))}
}

// detail is DRF's error body, {"detail": "..."}.
func detail(status int, msg string) response {
	return jsonResponse(status, struct {
		Detail string `json:"detail"`
	}{msg})
}

func notFound() response { return detail(http.StatusNotFound, "Not found.") }

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range map[string]func(*http.Request) response{
		"GET /v1/ping":                                                s.ping,
		"GET /v1/domains":                                             s.listDomains,
		"GET /v1/domains/{domain}":                                    s.getDomain,
		"GET /v1/domains/{domain}/users":                              s.listDomainUsers,
		"GET /v1/domains/{domain}/users/{id}":                         s.getDomainUser,
		"GET /v1/domains/{domain}/published-courses":                  s.listPublishedCourses,
		"GET /v1/domains/{domain}/published-courses/{id}":             s.getPublishedCourse,
		"GET /v1/domains/{domain}/published-courses/{id}/enrollments": s.listEnrollments,
		"GET /v1/users":                                               s.listUsers,
		"GET /v1/users/{id}":                                          s.getUser,
		"GET /v1/users/{id}/published-courses":                        s.listUserProgress,
		"GET /v1/courses":                                             s.listCourses,
		"GET /v1/courses/{id}":                                        s.getCourse,
		"GET /v1/lessons":                                             s.listLessons,
	} {
		mux.Handle(pattern, s.apiCall(pattern, h))
	}
	for pattern, h := range s.webhookViews() {
		mux.Handle(pattern, s.apiCall(pattern, h))
	}
	// Unknown paths never reach a view, so they are neither authenticated nor throttled.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		resp := notFound()
		s.calls.record(r.Method+" (unmatched)", resp.status)
		write(w, resp)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			// The reference writes paths without a trailing slash; whether the live API also takes
			// one is UNCONFIRMED, so both are accepted.
			r.URL.Path = strings.TrimSuffix(p, "/")
		}
		mux.ServeHTTP(w, r)
	})
}

// apiCall runs an API view the way the live service does: authenticate, throttle, then
// answer, with this simulator's faults and latency on top. Faults and limits apply only to
// authenticated calls.
func (s *Sim) apiCall(endpoint string, view func(*http.Request) response) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := s.authenticate(r)
		if !ok {
			s.calls.record(endpoint, resp.status)
			write(w, resp)
			return
		}
		if resp, ok = s.throttle.check(s.cfg.Now()); !ok {
			s.calls.record(endpoint, resp.status)
			s.wait(r.Context(), s.latency())
			write(w, resp)
			return
		}
		f := s.faultFor(r.URL.Path)
		if f.Kind == Fault5xx || f.Kind == Fault429 {
			resp = f.response()
		} else {
			s.mu.RLock()
			resp = view(r)
			s.mu.RUnlock()
		}
		s.calls.record(endpoint, resp.status)
		delay := s.latency()
		if f.Kind == FaultSlow {
			delay += s.cfg.SlowDelay
		}
		if !s.wait(r.Context(), delay) {
			return
		}
		if resp.status == http.StatusOK && resp.contentType == "application/json" {
			switch f.Kind {
			case FaultTruncated:
				writeTruncated(w, resp)
				return
			case FaultGarbled:
				resp.body = garble(resp.body)
			}
		}
		write(w, resp)
	})
}

// authenticate checks HTTP Basic auth: the API key as username, an empty password
// (reference §1). Failures use DRF's messages and its WWW-Authenticate challenge.
func (s *Sim) authenticate(r *http.Request) (response, bool) {
	fail := func(msg string) (response, bool) {
		resp := detail(http.StatusUnauthorized, msg)
		resp.header = map[string]string{"WWW-Authenticate": `Basic realm="api"`}
		return resp, false
	}
	scheme, creds, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "basic") {
		return fail("Authentication credentials were not provided.")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creds))
	if err != nil {
		return fail("Invalid basic header. Credentials not correctly base64 encoded.")
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	if user != s.cfg.APIKey || pass != "" {
		return fail("Invalid username/password.")
	}
	return response{}, true
}

// latency is the configured fixed delay plus jitter.
func (s *Sim) latency() time.Duration {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		s.diceMu.Lock()
		d += time.Duration(s.dice.Int64N(int64(s.cfg.Jitter)))
		s.diceMu.Unlock()
	}
	return d
}

// wait sleeps for d unless the client goes away or the simulator closes first.
func (s *Sim) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

func write(w http.ResponseWriter, resp response) {
	writeHeader(w, resp)
	_, _ = w.Write(resp.body)
}

// writeHeader sends the status and headers, announcing the full body length.
func writeHeader(w http.ResponseWriter, resp response) {
	h := w.Header()
	for k, v := range resp.header {
		h.Set(k, v)
	}
	if resp.contentType != "" {
		h.Set("Content-Type", resp.contentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
}
