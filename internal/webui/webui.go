// Package webui serves the settings and Backfill page: the connection's status and settings,
// a Backfill button, and the runs with their live progress, activity log and rejected records.
package webui

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/errclass"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// Runs starts, lists and controls runs; *pipeline.Engine is one.
type Runs interface {
	Start(ctx context.Context, req pipeline.StartRequest) (run *runstore.Run, created bool, err error)
	Get(ctx context.Context, id string) (*runstore.Run, error)
	List(ctx context.Context, limit int) ([]*runstore.Run, error)
	Pause(ctx context.Context, id string) (*runstore.Run, error)
	Resume(ctx context.Context, id string) (*runstore.Run, error)
	Cancel(ctx context.Context, id string) (*runstore.Run, error)
	RetryRejected(ctx context.Context, id string) (*runstore.Run, error)
}

// Ledger reads what a run recorded; *runstore.Store is one.
type Ledger interface {
	Events(ctx context.Context, id string, limit int) ([]runstore.Event, error)
	RejectedPage(ctx context.Context, id string, offset, limit int) ([]runstore.Rejected, int64, error)
}

// Settings reads, checks and saves the connection's settings; *settings.Store is one.
type Settings interface {
	Get(ctx context.Context) (settings.Settings, error)
	Validate(ctx context.Context, s settings.Settings) (settings.Settings, error)
	Put(ctx context.Context, s settings.Settings) (settings.Settings, error)
}

// DomainLister lists the Skilljar organization's domains; *skilljar.Client is one.
type DomainLister interface {
	Domains(ctx context.Context) ([]skilljar.Domain, error)
}

// ConnectionStatus reports the Salesforce connection; *connection.Authorizer is one.
type ConnectionStatus interface {
	Status(ctx context.Context) (connection.Status, error)
}

// Config tunes the page.
type Config struct {
	// Objects are the objects the settings offer, in the order shown. Defaults to
	// pipeline.Objects().
	Objects []string
	// RunsShown is how many of the newest runs the runs table lists. Defaults to 20.
	RunsShown int
	// EventsShown is how many of a run's latest events its activity log shows. Defaults to 200.
	EventsShown int
	// RejectedPageSize is how many rejected records one page of a run's ledger shows.
	// Defaults to 50.
	RejectedPageSize int
	// RefreshInterval is how often an open page refreshes runs in progress. Defaults to 2s.
	RefreshInterval time.Duration
	// MaxFormBytes bounds a submitted form; a larger one is refused. Defaults to 64 KiB.
	MaxFormBytes int64
	// IdleLimit is how long an unused refresh token lives, for the date the grant would
	// lapse. Defaults to connection.DefaultIdleLimit.
	IdleLimit time.Duration
}

func (c Config) withDefaults() Config {
	if len(c.Objects) == 0 {
		c.Objects = pipeline.Objects()
	}
	c.RunsShown = cmp.Or(c.RunsShown, 20)
	c.EventsShown = cmp.Or(c.EventsShown, 200)
	c.RejectedPageSize = cmp.Or(c.RejectedPageSize, 50)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, 2*time.Second)
	c.MaxFormBytes = cmp.Or(c.MaxFormBytes, 64<<10)
	c.IdleLimit = cmp.Or(c.IdleLimit, connection.DefaultIdleLimit)
	return c
}

// Deps are what the page shows and controls. Runs, Ledger and Settings are required.
type Deps struct {
	Runs     Runs
	Ledger   Ledger
	Settings Settings
	// Domains offers Skilljar's domains as checkboxes; without it (no Skilljar key) only the
	// saved domains are listed.
	Domains DomainLister
	// Connection shows the authentication status; without it (no BACKFILL_SECRET_KEY) the
	// page says Salesforce is not configured.
	Connection ConnectionStatus
	// Webhooks shows the Skilljar webhook block; without it the block is left out.
	Webhooks WebhookState
	// Doctor answers the Test connections button; without it the button is not shown.
	Doctor Doctor
	Logger zerolog.Logger
}

// Doctor checks the connections and the mapping for a scope; *doctor.Doctor is one.
type Doctor interface {
	Check(ctx context.Context, sc runstore.Scope) (*doctor.Report, error)
}

// Handler is the page. It serves
//
//	GET  /                         settings, authentication status, Backfill button, runs
//	POST /settings                 save the settings (action=connect: then /salesforce/connect)
//	POST /backfills                start a backfill over the saved settings (dry_run optional)
//	POST /doctor                   test the connections and the mapping for the saved settings
//	GET  /runs/{id}                a run: progress, counters, activity log, rejected records
//	POST /runs/{id}/{action}       pause, resume, cancel or retry-rejected
//	GET  /live/runs[/{id}]         the parts of those pages that refresh themselves
//	GET  /assets/...               the stylesheet and the refresh script
//
// It has no authentication or cross-origin checks of its own: mount it behind httpapi
// (Deps.Page), which requires the API token and refuses state-changing requests from other
// origins before they get here.
type Handler struct {
	cfg    Config
	d      Deps
	tmpl   *template.Template
	assets http.Handler
	mux    *http.ServeMux
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// New returns the page.
func New(cfg Config, d Deps) (*Handler, error) {
	if d.Runs == nil || d.Ledger == nil || d.Settings == nil {
		return nil, errors.New("webui: Deps.Runs, Ledger and Settings are required")
	}
	h := &Handler{cfg: cfg.withDefaults(), d: d}
	assets, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		return nil, fmt.Errorf("webui: assets: %w", err)
	}
	version, err := assetVersion(assets)
	if err != nil {
		return nil, err
	}
	h.assets = http.StripPrefix("/assets/", http.FileServerFS(assets))
	h.tmpl, err = template.New("").Funcs(templateFuncs(version)).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("webui: templates: %w", err)
	}

	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.serveIndex)
	h.mux.HandleFunc("POST /settings", h.saveSettings)
	h.mux.HandleFunc("POST /backfills", h.startBackfill)
	h.mux.HandleFunc("POST /doctor", h.testConnections)
	h.mux.HandleFunc("GET /runs/{id}", h.serveRun)
	h.mux.HandleFunc("POST /runs/{id}/{action}", h.runAction)
	h.mux.HandleFunc("GET /live/runs", h.serveRunsTable)
	h.mux.HandleFunc("GET /live/runs/{id}", h.serveRunLive)
	h.mux.HandleFunc("GET /assets/", h.serveAsset)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, &pageError{Status: http.StatusNotFound, Message: "There is no page at " + r.URL.Path + "."})
	})
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Everything the page runs is its own file: no inline script, no other origin, no frames.
	hd.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	// A name fs.FS cannot hold (invalid UTF-8, a NUL) would come back from the file server
	// as a 500; it is a path that names no asset.
	if !fs.ValidPath(strings.TrimPrefix(r.URL.Path, "/assets/")) {
		h.renderError(w, r, &pageError{Status: http.StatusNotFound, Message: "There is no such asset."})
		return
	}
	// Asset URLs carry a hash of the assets (see assetVersion), so a new build is a new URL.
	w.Header().Set("Cache-Control", "private, max-age=86400")
	h.assets.ServeHTTP(w, r)
}

// assetVersion hashes the assets so their URLs change whenever their content does.
func assetVersion(assets fs.FS) (string, error) {
	sum := sha256.New()
	err := fs.WalkDir(assets, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, path)
		sum.Write([]byte(path))
		sum.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("webui: hash assets: %w", err)
	}
	return hex.EncodeToString(sum.Sum(nil))[:12], nil
}

// pageError is a failure shown to the operator as a page or a banner, with its status.
type pageError struct {
	Status  int
	Message string
	// RunID links the run an error is about, such as the active run of a conflict.
	RunID string
}

func (e *pageError) Error() string { return e.Message }

// classify turns an error from the engine or the stores into what the operator reads. Every
// page and banner goes through it, so each kind of failure reads the same everywhere; the
// kinds are errclass's, shared with the JSON API. An internal error's cause is logged under
// the request's id and only the id is shown, as the API does.
func (h *Handler) classify(r *http.Request, err error) *pageError {
	if pe, ok := errors.AsType[*pageError](err); ok {
		return pe
	}
	c := errclass.Classify(err)
	pe := &pageError{Status: c.Status}
	switch c.Kind {
	case errclass.RunActive:
		pe.RunID = c.ActiveRunID
		pe.Message = "A run with the same scope is still active; watch it, or pause or cancel it before starting another."
	case errclass.InvalidValue:
		pe.Message = c.Field + ": " + c.Detail
	case errclass.InvalidSettings:
		pe.Message = "The settings were not saved: " + c.Detail + "."
	case errclass.NotFound:
		pe.Message = "There is no such run."
	case errclass.InvalidState:
		pe.Message = capitalize(c.Detail) + "."
	case errclass.Blocked:
		pe.Message = capitalize(c.Detail) + "."
	case errclass.Upstream:
		pe.Message = c.Service + " could not be asked; try again shortly (" + c.Detail + ")."
	default:
		pe.Message = "Something went wrong on the server; " + h.hidden(r.Context(), "settings page failed", err) + "."
	}
	return pe
}

// hidden logs an internal error's cause under the request's id and returns what the page
// says in its place, as the API does: a cause can name hosts and internals that are the
// server log's business, not the page's.
func (h *Handler) hidden(ctx context.Context, what string, err error) string {
	id := logging.RequestID(ctx)
	h.d.Logger.Error().Err(err).Str("request_id", id).Msg(what)
	if id == "" {
		return "the server log has the cause"
	}
	return "the server log has the cause under request id " + id
}

// render writes a template whole or not at all, so a failing template never leaves half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		h.d.Logger.Error().Err(err).Str("template", name).Msg("settings page template failed")
		http.Error(w, "the page could not be rendered; the server log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the browser went away; nothing left to tell it
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, err error) {
	pe := h.classify(r, err)
	h.render(w, pe.Status, "error", struct {
		Layout layout
		Err    *pageError
	}{h.layout("Error"), pe})
}

// layout is what every page's frame needs.
type layout struct {
	Title string
	// RefreshMillis is how often live parts of the page refresh.
	RefreshMillis int64
}

func (h *Handler) layout(title string) layout {
	return layout{Title: title, RefreshMillis: h.cfg.RefreshInterval.Milliseconds()}
}

// parseForm reads a posted form within MaxFormBytes.
func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &pageError{Status: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("The form is larger than %d bytes; nothing was changed.", h.cfg.MaxFormBytes)}
		}
		return &pageError{Status: http.StatusBadRequest, Message: "The form could not be read (" + err.Error() + "); nothing was changed."}
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func templateFuncs(assetVersion string) template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) string { return "/assets/" + name + "?v=" + assetVersion },
		"when": func(t any) string {
			switch t := t.(type) {
			case time.Time:
				return t.UTC().Format("2006-01-02 15:04:05 UTC")
			case *time.Time:
				if t != nil {
					return t.UTC().Format("2006-01-02 15:04:05 UTC")
				}
			}
			return "—"
		},
		"percent":  formatPercent,
		"rate":     formatRate,
		"eta":      formatETA,
		"join":     strings.Join,
		"terminal": func(s runstore.State) bool { return s.Terminal() },
	}
}

func formatPercent(p float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", p), ".0") + "%"
}

func formatRate(perSecond float64) string {
	switch {
	case perSecond <= 0:
		return "—"
	case perSecond < 1:
		return fmt.Sprintf("%.1f/min", perSecond*60)
	}
	return fmt.Sprintf("%.1f/s", perSecond)
}

func formatETA(p runstore.Progress, st runstore.State) string {
	switch {
	case st.Terminal():
		return "—"
	case p.ETASeconds < 0:
		return "measuring…"
	}
	d := time.Duration(p.ETASeconds * float64(time.Second)).Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	if d >= time.Minute {
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
