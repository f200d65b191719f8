package connection

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/upstream"
)

// Handler serves the browser side of the flow:
//
//	GET  /salesforce/connect   a page with the button that POSTs the connect
//	POST /salesforce/connect   303 to the login host's authorize URL
//	GET  /salesforce/callback  302 to "/?connected=1", or an error page that says what failed
//
// A connect replaces the org's grant and revokes the old one, so only a POST starts one
// (the caller's cross-origin protection covers POSTs), and a fetch that a browser marks as
// coming from another site is refused either way. The caller puts its own authentication in
// front of /salesforce/connect. The callback cannot carry it (Salesforce redirects the
// browser there), and needs none: only a state issued by Begin is accepted, once, and the
// route is rate-limited.
func (a *Authorizer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /salesforce/connect", a.serveConnectPage)
	mux.HandleFunc("POST /salesforce/connect", a.serveConnect)
	mux.HandleFunc("GET /salesforce/callback", a.serveCallback)
	return mux
}

// crossSite reports a request a browser says another site made (Fetch Metadata); requests
// without the header come from non-browser clients or old browsers, which the POST-only
// connect still covers.
func crossSite(w http.ResponseWriter, r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		page(w, http.StatusForbidden, "Salesforce connect refused",
			"A connect must be started from this server's own settings page, not from another site.", "")
		return true
	}
	return false
}

func (a *Authorizer) serveConnectPage(w http.ResponseWriter, r *http.Request) {
	if crossSite(w, r) {
		return
	}
	page(w, http.StatusOK, "Connect Salesforce",
		"Sign in to Salesforce and allow access; connecting replaces the connection this server has now.", "Connect to Salesforce")
}

func (a *Authorizer) serveConnect(w http.ResponseWriter, r *http.Request) {
	if crossSite(w, r) {
		return
	}
	u, err := a.Begin(r.Context())
	if err != nil {
		a.cfg.Logger.Error().Err(err).Msg("Salesforce connect could not start")
		page(w, http.StatusInternalServerError, "Salesforce connect could not start", err.Error(), "Try again")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// Bounds on what a refused callback may write to the activity log and the log. Salesforce's
// own error descriptions are a short sentence ("end-user denied authorization").
const (
	maxErrorCode        = 64
	maxErrorDescription = 300
)

func (a *Authorizer) serveCallback(w http.ResponseWriter, r *http.Request) {
	// The callback URL holds the authorization code: no link on our page may pass it on.
	w.Header().Set("Referrer-Policy", "no-referrer")
	if wait := a.callbacks.take(a.cfg.Now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		page(w, http.StatusTooManyRequests, "Too many Salesforce callbacks",
			"This server got more Salesforce callbacks than a person connecting sends; wait a minute and connect again.", "")
		return
	}
	q := r.URL.Query()
	if code := q.Get("error"); code != "" {
		// Only a refusal that carries a state issued here, once, is news worth recording:
		// anyone can send a browser to this URL, and the log keeps few events. Taking the
		// state spends it, so the attempt cannot be completed later.
		if _, err := a.store.takeState(r.Context(), q.Get("state"), a.cfg.Now()); err != nil {
			a.refused(r.Context(), err)
			page(w, http.StatusBadRequest, "Salesforce was not connected", err.Error(), "Connect again")
			return
		}
		err := &ConsentError{Code: clip(code, maxErrorCode), Description: clip(q.Get("error_description"), maxErrorDescription)}
		a.failed(r.Context(), err)
		page(w, http.StatusBadRequest, "Salesforce was not connected", err.Error(), "Connect again")
		return
	}
	if _, err := a.Complete(r.Context(), q.Get("state"), q.Get("code")); err != nil {
		var se *StateError
		switch {
		case errors.As(err, &se), errors.Is(err, errNoCode):
			page(w, http.StatusBadRequest, "Salesforce was not connected", err.Error(), "Connect again")
		case errors.As(err, new(*upstream.Error)):
			// Salesforce refused the exchange, did not answer, or answered unusably.
			page(w, http.StatusBadGateway, "Salesforce was not connected", err.Error(), "Connect again")
		default:
			// Our own failure (Redis, the secret key): the cause goes to the log, the id to the page.
			id := logging.RequestID(r.Context())
			a.cfg.Logger.Error().Err(err).Str("request_id", id).Msg("the OAuth callback failed")
			page(w, http.StatusInternalServerError, "Salesforce was not connected",
				"Something went wrong on the server; the server log has the cause under request id "+id+".", "Connect again")
		}
		return
	}
	http.Redirect(w, r, "/?connected=1", http.StatusFound)
}

// clip cuts s to at most n bytes on a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// DefaultCallbacksPerMinute is OAuthConfig.CallbacksPerMinute's default: far more than
// people connecting send, far fewer than a flood.
const DefaultCallbacksPerMinute = 60

// window counts events in fixed one-minute windows. It is per process: each api replica
// bounds its own share of a flood.
type window struct {
	mu    sync.Mutex
	max   int
	start time.Time
	n     int
}

// take counts one event at now, or returns how long until the next window opens when the
// current one is full.
func (w *window) take(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= time.Minute {
		w.start, w.n = now, 0
	}
	if w.n >= w.max {
		return w.start.Add(time.Minute).Sub(now)
	}
	w.n++
	return 0
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{with .Button}}<form method="post" action="/salesforce/connect"><button type="submit">{{.}}</button></form>{{end}}
<p><a href="/">Back to settings</a></p></body></html>
`))

// page answers with a small HTML page, with the connect button when button names it.
// Messages come from our own errors, which never hold a token or the client secret.
func page(w http.ResponseWriter, status int, title, message, button string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The button starts a connect: no other site may frame it to trick a click.
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Message, Button string }{title, message, button})
}
