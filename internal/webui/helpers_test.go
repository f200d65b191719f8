package webui_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/internal/webui"
)

// lateHandler is a mount whose handler is built from the environment apitest.Start returns;
// it is set before the test sends any request.
type lateHandler struct{ h http.Handler }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.h.ServeHTTP(w, r) }

// testEnv is the real API with the page and the OAuth flow mounted, over a private Redis
// and both simulators.
type testEnv struct {
	*apitest.Env
	// browser sends requests as a browser on the page would, without following redirects.
	browser *http.Client
}

func setup(t testing.TB, users int) *testEnv {
	t.Helper()
	return setupOrg(t, users, salesforcesim.Config{})
}

// setupOrg is setup on a simulated org configured by org (its profiles, say).
func setupOrg(t testing.TB, users int, org salesforcesim.Config) *testEnv {
	t.Helper()
	page, oauth := &lateHandler{}, &lateHandler{}
	e := apitest.Start(t, apitest.Options{Users: users, Salesforce: org, Mounts: func(d *httpapi.Deps) {
		d.Page, d.OAuth = page, oauth
	}})
	src, err := skilljar.New(skilljar.Config{BaseURL: e.Skilljar.URL(), APIKey: e.Skilljar.APIKey(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The page logs into the API's buffer, so a test can find a failure under its request id.
	var out io.Writer = e.Log
	if os.Getenv("TEST_LOG") != "" {
		out = io.MultiWriter(e.Log, zerolog.ConsoleWriter{Out: os.Stderr})
	}
	logger := zerolog.New(out)
	auth := connection.NewAuthorizer(e.Connection, connection.OAuthConfig{
		ClientID: e.Salesforce.ClientID(), ClientSecret: e.Salesforce.ClientSecret(),
		RedirectURL: e.Server.URL + "/salesforce/callback", LoginURL: e.Salesforce.LoginURL(),
		Environment: "production", Logger: logger,
	})
	h, err := webui.New(webui.Config{RefreshInterval: 200 * time.Millisecond, RejectedPageSize: 2}, webui.Deps{
		Runs: doctor.Gated{Engine: e.Engine, Doctor: e.Doctor}, Ledger: e.Store, Settings: e.Settings, Domains: src,
		Connection: auth, Doctor: e.Doctor, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	page.h, oauth.h = h, auth.Handler()
	return &testEnv{Env: e, browser: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is an answer read whole.
type page struct {
	status int
	header http.Header
	body   string
}

// request sends what a browser on the page sends: Basic credentials with the token as the
// password and, for a POST, a same-origin form. header entries replace those defaults; an
// empty value removes one.
func (e *testEnv) request(t testing.TB, method, path string, form url.Values, header ...string) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.Server.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("operator", apitest.Token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.Server.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp := apitest.Send(t, e.browser, req, header...)
	return page{status: resp.StatusCode, header: resp.Header, body: string(resp.Body)}
}

func (e *testEnv) get(t testing.TB, path string) page { return e.request(t, http.MethodGet, path, nil) }

func (e *testEnv) post(t *testing.T, path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	return e.request(t, http.MethodPost, path, form)
}

func (p page) requireStatus(t testing.TB, want int) page {
	t.Helper()
	if p.status != want {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, want, p.body)
	}
	return p
}

func (p page) requireRedirect(t *testing.T, location string) {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound && p.status != http.StatusTemporaryRedirect {
		t.Fatalf("status %d, want a redirect to %s; body:\n%s", p.status, location, p.body)
	}
	if got := p.header.Get("Location"); got != location {
		t.Fatalf("redirect to %q, want %q", got, location)
	}
}

func (p page) requireContains(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !strings.Contains(p.text(), s) {
			t.Fatalf("page lacks %q; body:\n%s", s, p.body)
		}
	}
}

// text is the body with HTML entities decoded, as a reader sees the words.
func (p page) text() string { return html.UnescapeString(p.body) }

// fieldError returns the message shown next to a settings field, or "".
func (p page) fieldError(field string) string {
	m := regexp.MustCompile(`<p class="field-error" id="error-` + regexp.QuoteMeta(field) + `">([^<]*)</p>`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// waitFor polls the run until it finishes.
func (e *testEnv) waitFor(t *testing.T, id string) *runstore.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	run, err := e.Engine.Watch(ctx, id, 50*time.Millisecond, nil)
	if err != nil {
		events, _ := e.Store.Events(e.Ctx, id, 20)
		t.Fatalf("run %s did not finish: %v\nrun: %+v\nlatest events: %+v\nserver log tail:\n%s", id, err, run, events, tail(e.Log.String(), 3000))
	}
	return run
}

func (e *testEnv) onlyRun(t *testing.T) *runstore.Run {
	t.Helper()
	runs, err := e.Engine.List(e.Ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs, want exactly one", len(runs))
	}
	return runs[0]
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
