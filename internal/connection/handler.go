package connection

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/upstream"
)

// Handler serves the browser side of the flow:
//
//	GET /salesforce/connect   302 to the login host's authorize URL
//	GET /salesforce/callback  302 to "/?connected=1", or an error page that says what failed
//
// The caller puts its own authentication in front of /salesforce/connect. The callback
// cannot carry it (Salesforce redirects the browser there), and needs none: only a state
// issued by Begin is accepted, once.
func (a *Authorizer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /salesforce/connect", a.serveConnect)
	mux.HandleFunc("GET /salesforce/callback", a.serveCallback)
	return mux
}

func (a *Authorizer) serveConnect(w http.ResponseWriter, r *http.Request) {
	u, err := a.Begin(r.Context())
	if err != nil {
		a.cfg.Logger.Error().Err(err).Msg("Salesforce connect could not start")
		page(w, http.StatusInternalServerError, "Salesforce connect could not start", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

func (a *Authorizer) serveCallback(w http.ResponseWriter, r *http.Request) {
	// The callback URL holds the authorization code: no link on our page may pass it on.
	w.Header().Set("Referrer-Policy", "no-referrer")
	q := r.URL.Query()
	if code := q.Get("error"); code != "" {
		// The state is spent all the same, so the attempt cannot be completed later. The
		// denial is the news, whatever the state was.
		var se *StateError
		if _, err := a.store.takeState(r.Context(), q.Get("state"), a.cfg.Now()); err != nil && !errors.As(err, &se) {
			a.cfg.Logger.Warn().Err(err).Msg("could not spend the OAuth state of a refused connect")
		}
		err := &ConsentError{Code: code, Description: q.Get("error_description")}
		a.failed(r.Context(), err)
		page(w, http.StatusBadRequest, "Salesforce was not connected", err.Error())
		return
	}
	if _, err := a.Complete(r.Context(), q.Get("state"), q.Get("code")); err != nil {
		var se *StateError
		switch {
		case errors.As(err, &se), errors.Is(err, errNoCode):
			page(w, http.StatusBadRequest, "Salesforce was not connected", err.Error())
		case errors.As(err, new(*upstream.Error)):
			// Salesforce refused the exchange, did not answer, or answered unusably.
			page(w, http.StatusBadGateway, "Salesforce was not connected", err.Error())
		default:
			// Our own failure (Redis, the secret key): the cause goes to the log, the id to the page.
			id := logging.RequestID(r.Context())
			a.cfg.Logger.Error().Err(err).Str("request_id", id).Msg("the OAuth callback failed")
			page(w, http.StatusInternalServerError, "Salesforce was not connected",
				"Something went wrong on the server; the server log has the cause under request id "+id+".")
		}
		return
	}
	http.Redirect(w, r, "/?connected=1", http.StatusFound)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p><p><a href="/salesforce/connect">Connect again</a> · <a href="/">Back to settings</a></p></body></html>
`))

// page answers with a small HTML page. Messages come from our own errors, which never hold
// a token or the client secret.
func page(w http.ResponseWriter, status int, title, message string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Title, Message string }{title, message})
}
