package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
)

// StartBody is the body of POST /v1/backfills. Every field may be omitted: domains,
// objects and sink_mode then come from the saved settings, and dry_run is false.
type StartBody struct {
	// Domains narrows the run to these Skilljar domains, all inside the settings'
	// allow-list when it has one.
	Domains []string `json:"domains,omitempty"`
	// Objects narrows the run to these objects, all inside the settings' objects when
	// those are set.
	Objects  []string `json:"objects,omitempty"`
	DryRun   bool     `json:"dry_run,omitempty"`
	SinkMode string   `json:"sink_mode,omitempty"`
}

// RunList is the body of GET /v1/backfills, newest run first.
type RunList struct {
	Runs []*runstore.Run `json:"runs"`
}

// EventList is the body of GET /v1/backfills/{id}/events, oldest event first.
type EventList struct {
	Events []runstore.Event `json:"events"`
}

// RejectedPage is the body of GET /v1/backfills/{id}/rejected.
type RejectedPage struct {
	Rejected []runstore.Rejected `json:"rejected"`
	// Total is the length of the run's ledger; Dropped counts rejections beyond its cap.
	Total   int64 `json:"total"`
	Offset  int   `json:"offset"`
	Limit   int   `json:"limit"`
	Dropped int64 `json:"dropped"`
}

// SampleList is the body of GET /v1/backfills/{id}/samples: mapped rows a dry run shows.
type SampleList struct {
	Samples []runstore.Sample `json:"samples"`
}

// Health is the body of /healthz and /readyz when they pass.
type Health struct {
	Status string `json:"status"`
}

// IdempotencyKeyHeader makes a retried POST /v1/backfills return the run the first one
// created; ReplayedHeader is "true" on such an answer.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	ReplayedHeader       = "Idempotent-Replayed"
)

// Bounds of the list routes' query parameters.
const (
	defaultRunsLimit     = 50
	defaultEventsLimit   = 100
	defaultRejectedLimit = 100
	maxLimit             = 1000
)

// idempotencyKeyPattern keeps keys short and printable: they become part of a Redis key.
var idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,200}$`)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.d.Redis.Ping(ctx).Err(); err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady, cause: err,
			Message: "Redis does not answer PING: " + err.Error()}
	}
	writeJSON(w, http.StatusOK, Health{Status: "ready"})
	return nil
}

func (s *Server) startBackfill(w http.ResponseWriter, r *http.Request) error {
	var body StartBody
	if err := s.decode(w, r, &body, false); err != nil {
		return err
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if key != "" && !idempotencyKeyPattern.MatchString(key) {
		return invalidValue(IdempotencyKeyHeader, "the key must be 1 to 200 printable ASCII characters without spaces, such as a UUID")
	}
	st, err := s.d.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	scope, err := scopeFor(body, st)
	if err != nil {
		return err
	}
	run, created, err := s.d.Runs.Start(r.Context(), pipeline.StartRequest{
		Kind: runstore.KindBackfill, Scope: scope, Trigger: "api", IdempotencyKey: key,
	})
	if err != nil {
		return err
	}
	if !created {
		w.Header().Set(ReplayedHeader, "true")
	}
	writeJSON(w, http.StatusAccepted, run)
	return nil
}

// scopeFor fills what the request leaves out from the settings, and keeps what it names
// inside the settings' allow-lists: the settings are the admin's word on what may sync.
func scopeFor(b StartBody, st settings.Settings) (runstore.Scope, error) {
	sc := st.Scope()
	sc.Domains, sc.Objects = orDefault(b.Domains, st.Domains), orDefault(b.Objects, st.Objects)
	sc.DryRun, sc.SinkMode = b.DryRun, cmp.Or(b.SinkMode, st.SinkMode)
	if err := within("domains", b.Domains, st.Domains); err != nil {
		return sc, err
	}
	return sc, within("objects", b.Objects, st.Objects)
}

func orDefault(asked, def []string) []string {
	if len(asked) > 0 {
		return asked
	}
	return def
}

func within(field string, asked, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	for _, v := range asked {
		if !slices.Contains(allowed, v) {
			return invalidValue(field, "%q is outside the settings' %s (%s); change the settings first, or leave %s out to use them",
				v, field, strings.Join(allowed, ", "), field)
		}
	}
	return nil
}

func (s *Server) listBackfills(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", defaultRunsLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	runs, err := s.d.Runs.List(r.Context(), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RunList{Runs: runs})
	return nil
}

// runID returns the path's run id once its shape is right: what cannot be an id answers 400
// rather than 404.
func runID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !runstore.ValidID(id) {
		return "", &Error{Status: http.StatusBadRequest, Code: CodeInvalidID, Field: "id",
			Message: fmt.Sprintf("%q is not a run id; run ids look like r20250102t150405a1b2c3d4", id)}
	}
	return id, nil
}

// existingRun returns the path's run, so the routes that read its ledger answer 404 for a
// run that does not exist rather than an empty list.
func (s *Server) existingRun(r *http.Request) (*runstore.Run, error) {
	id, err := runID(r)
	if err != nil {
		return nil, err
	}
	return s.d.Runs.Get(r.Context(), id)
}

func (s *Server) getBackfill(w http.ResponseWriter, r *http.Request) error {
	run, err := s.existingRun(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

// runAction serves a POST that changes a run and answers with the resulting run.
func (s *Server) runAction(status int, act func(ctx context.Context, id string) (*runstore.Run, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := runID(r)
		if err != nil {
			return err
		}
		run, err := act(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, status, run)
		return nil
	}
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", defaultEventsLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	run, err := s.existingRun(r)
	if err != nil {
		return err
	}
	events, err := s.d.Ledger.Events(r.Context(), run.ID, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, EventList{Events: events})
	return nil
}

func (s *Server) listRejected(w http.ResponseWriter, r *http.Request) error {
	offset, err := queryInt(r, "offset", 0, 0, 1<<31-1)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultRejectedLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	run, err := s.existingRun(r)
	if err != nil {
		return err
	}
	rows, total, err := s.d.Ledger.RejectedPage(r.Context(), run.ID, offset, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RejectedPage{Rejected: rows, Total: total, Offset: offset, Limit: limit, Dropped: run.RejectedDropped})
	return nil
}

func (s *Server) listSamples(w http.ResponseWriter, r *http.Request) error {
	run, err := s.existingRun(r)
	if err != nil {
		return err
	}
	samples, err := s.d.Ledger.Samples(r.Context(), run.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SampleList{Samples: samples})
	return nil
}

// queryInt reads an optional whole-number query parameter within [lo, hi].
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, invalidValue(name, "%s must be a whole number from %d to %d, not %q", name, lo, hi, raw)
	}
	return n, nil
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) error {
	st, err := s.d.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// putSettings replaces the settings; fields left out take their defaults. updated_at is
// accepted, so a GET's body can be sent back edited, and ignored.
func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) error {
	var st settings.Settings
	if err := s.decode(w, r, &st, true); err != nil {
		return err
	}
	saved, err := s.d.Settings.Put(r.Context(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, saved)
	return nil
}

func (s *Server) connection() (Connection, error) {
	if s.d.Connection == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeNotConfigured,
			Message: "this server has no Salesforce connection configured; set BACKFILL_SECRET_KEY and the SALESFORCE_* variables"}
	}
	return s.d.Connection, nil
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := s.connection()
	if err != nil {
		return err
	}
	st, err := c.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// ConnectionEventList is the body of GET /v1/connection/events.
type ConnectionEventList struct {
	Events []connection.Event `json:"events"`
}

func (s *Server) connectionEvents(w http.ResponseWriter, r *http.Request) error {
	c, err := s.connection()
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", defaultEventsLimit, 1, maxLimit)
	if err != nil {
		return err
	}
	events, err := c.Events(r.Context(), limit)
	if err != nil {
		return err
	}
	if events == nil {
		events = []connection.Event{}
	}
	writeJSON(w, http.StatusOK, ConnectionEventList{Events: events})
	return nil
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := s.connection()
	if err != nil {
		return err
	}
	if err := c.Disconnect(r.Context()); err != nil {
		return err
	}
	return s.getConnection(w, r)
}

// doctor reports on the scope a start without a body would run: the saved settings'.
func (s *Server) doctor(w http.ResponseWriter, r *http.Request) error {
	return s.withDoctor(w, r, func(sc runstore.Scope) (any, error) { return s.d.Doctor.Check(r.Context(), sc) })
}

// suggestMapping fits the mapping to the org, for the saved settings' scope.
func (s *Server) suggestMapping(w http.ResponseWriter, r *http.Request) error {
	return s.withDoctor(w, r, func(sc runstore.Scope) (any, error) { return s.d.Doctor.SuggestMapping(r.Context(), sc) })
}

// withDoctor answers what ask returns for the saved settings' scope.
func (s *Server) withDoctor(w http.ResponseWriter, r *http.Request, ask func(runstore.Scope) (any, error)) error {
	if s.d.Doctor == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotConfigured,
			Message: "this server has no Skilljar or Salesforce client configured; set SKILLJAR_API_KEY and the SALESFORCE_* variables"}
	}
	st, err := s.d.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	sc, err := scopeFor(StartBody{}, st)
	if err != nil {
		return err
	}
	v, err := ask(sc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
