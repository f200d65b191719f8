package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/httpapi/apitest"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// mounts stands in for the extension handlers and records the paths that reached them.
type mounts struct {
	mu      sync.Mutex
	reached []string
}

func (m *mounts) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.reached = append(m.reached, name+" "+r.Method+" "+r.URL.Path)
		m.mu.Unlock()
		fmt.Fprintf(w, "%s served %s", name, r.URL.Path)
	})
}

func (m *mounts) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.reached...)
}

func startWithMounts(t *testing.T) (*apitest.Env, *mounts) {
	m := &mounts{}
	e := apitest.Start(t, apitest.Options{Users: 5, Mounts: func(d *httpapi.Deps) {
		d.OAuth, d.Monitoring, d.Metrics, d.Page = m.handler("oauth"), m.handler("monitoring"), m.handler("metrics"), m.handler("page")
	}})
	return e, m
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestEveryProtectedRouteRefusesMissingAndWrongTokens(t *testing.T) {
	t.Parallel()
	e, m := startWithMounts(t)
	routes := e.Server.Config.Handler.(*httpapi.Server).Routes()
	type target struct{ method, path, challenge string }
	var targets []target
	for key, public := range routes {
		if public {
			continue
		}
		method, pattern, _ := strings.Cut(key, " ")
		challenge := "Bearer"
		if pattern == "/v1/docs" { // a page: a browser must be asked for the password
			challenge = "Basic"
		}
		targets = append(targets, target{method, strings.ReplaceAll(pattern, "{id}", runstore.NewID(time.Now(), 9)), challenge})
	}
	if len(targets) < 15 {
		t.Fatalf("only %d protected routes registered", len(targets))
	}
	targets = append(targets,
		target{http.MethodGet, "/v1/unknown", "Bearer"},
		target{http.MethodGet, "/metrics", "Bearer"},
		target{http.MethodGet, "/", "Basic"},
		target{http.MethodPost, "/", "Basic"},
		target{http.MethodGet, "/monitoring/", "Basic"},
		target{http.MethodDelete, "/monitoring/api/queues/backfill", "Basic"},
		target{http.MethodGet, "/salesforce/connect", "Basic"},
	)
	credentials := map[string]string{
		"none":                "",
		"wrong bearer":        "Bearer not-the-token",
		"token prefix":        "Bearer " + apitest.Token[:len(apitest.Token)-1],
		"wrong basic":         basic("admin", "not-the-token"),
		"token as basic user": basic(apitest.Token, ""),
		"other scheme":        "Token " + apitest.Token,
	}
	for _, tg := range targets {
		for name, auth := range credentials {
			r := e.DoRaw(t, tg.method, tg.path, `{}`, "Authorization", auth)
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s credentials: status %d, want 401", tg.method, tg.path, name, r.StatusCode)
				continue
			}
			if b := r.Error(t); b.Error.Code != httpapi.CodeUnauthorized {
				t.Errorf("%s %s: code %q", tg.method, tg.path, b.Error.Code)
			}
			if ch := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, tg.challenge+" realm=") {
				t.Errorf("%s %s: WWW-Authenticate %q, want a %s challenge", tg.method, tg.path, ch, tg.challenge)
			}
		}
	}
	if got := m.seen(); len(got) != 0 {
		t.Fatalf("unauthenticated requests reached mounted handlers: %v", got)
	}
	if n := e.Enqueued(t); n != 0 {
		t.Fatalf("unauthenticated requests enqueued %d tasks", n)
	}
	if runs, _ := e.Store.List(e.Ctx, 10); len(runs) != 0 {
		t.Fatalf("unauthenticated requests created %d runs", len(runs))
	}
}

func TestTheTokenOpensEveryDoorAsBearerOrAsBasicPassword(t *testing.T) {
	t.Parallel()
	e, m := startWithMounts(t)
	bearer, browser := "Bearer "+apitest.Token, basic("any-name", apitest.Token)
	for _, auth := range []string{bearer, browser} {
		if r := e.DoRaw(t, http.MethodGet, "/v1/backfills", nil, "Authorization", auth); r.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/backfills with %q: %d %s", strings.Fields(auth)[0], r.StatusCode, r.Body)
		}
	}
	for _, p := range []string{"/", "/monitoring/api/queues", "/metrics", "/salesforce/connect"} {
		r := e.DoRaw(t, http.MethodGet, p, nil, "Authorization", browser)
		requireStatus(t, r, http.StatusOK)
	}
	want := []string{"page GET /", "monitoring GET /monitoring/api/queues", "metrics GET /metrics", "oauth GET /salesforce/connect"}
	if got := m.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("mounted handlers saw %v, want %v (full paths)", got, want)
	}
}

func TestTheOAuthCallbackIsServedWithoutTheToken(t *testing.T) {
	t.Parallel()
	e, m := startWithMounts(t)
	r := e.DoRaw(t, http.MethodGet, "/salesforce/callback?code=abc&state=xyz", nil)
	requireStatus(t, r, http.StatusOK)
	if got := m.seen(); len(got) != 1 || got[0] != "oauth GET /salesforce/callback" {
		t.Fatalf("callback reached %v", got)
	}
	requireStatus(t, e.DoRaw(t, http.MethodGet, "/salesforce/callbackx", nil), http.StatusUnauthorized)
}

func TestCrossSiteFormPostsNeverReachThePage(t *testing.T) {
	t.Parallel()
	e, m := startWithMounts(t)
	auth := basic("admin", apitest.Token)
	r := e.DoRaw(t, http.MethodPost, "/", "domains=x", "Authorization", auth, "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site")
	requireError(t, r, http.StatusForbidden, httpapi.CodeCrossOrigin, "")
	r = e.DoRaw(t, http.MethodPost, "/monitoring/api/queues/backfill:pause", nil, "Authorization", auth, "Origin", "https://evil.example")
	requireError(t, r, http.StatusForbidden, httpapi.CodeCrossOrigin, "")
	if got := m.seen(); len(got) != 0 {
		t.Fatalf("cross-site posts reached %v", got)
	}
	r = e.DoRaw(t, http.MethodPost, "/", "domains=x", "Authorization", auth, "Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "same-origin")
	requireStatus(t, r, http.StatusOK)
}

func TestEveryRequestIsLoggedOnceWithoutCredentialsOrBodies(t *testing.T) {
	t.Parallel()
	e, _ := startWithMounts(t)
	const marker = "body-marker-7f3a"
	e.Do(t, http.MethodPut, "/v1/settings", `{"domains": ["`+marker+`.example.com"]}`)
	e.DoRaw(t, http.MethodGet, "/v1/settings", nil, "Authorization", basic("admin", apitest.Token), "X-Request-Id", "caller-req-1")
	e.DoRaw(t, http.MethodGet, "/salesforce/callback?code=oauth-code-"+marker, nil)
	e.DoRaw(t, http.MethodGet, "/v1/backfills", nil, "Authorization", "Bearer wrong-"+marker)
	r := e.Do(t, http.MethodGet, "/v1/backfills", nil, "X-Request-Id", "bad id with spaces")
	if id := r.Header.Get("X-Request-Id"); len(id) != 16 {
		t.Fatalf("a malformed caller request id was kept: %q", id)
	}

	logs := e.Log.String()
	for _, secret := range []string{apitest.Token, base64.StdEncoding.EncodeToString([]byte("admin:" + apitest.Token)), marker} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, logs)
		}
	}
	type line struct {
		Message    string  `json:"message"`
		Method     string  `json:"method"`
		Path       string  `json:"path"`
		Status     int     `json:"status"`
		DurationMS float64 `json:"duration_ms"`
		RequestID  string  `json:"request_id"`
		ErrorCode  string  `json:"error_code"`
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", raw, err)
		}
		if l.Message == "http request" {
			got = append(got, l)
		}
	}
	want := []line{
		{Method: "PUT", Path: "/v1/settings", Status: 400, ErrorCode: httpapi.CodeInvalidSettings},
		{Method: "GET", Path: "/v1/settings", Status: 200, RequestID: "caller-req-1"},
		{Method: "GET", Path: "/salesforce/callback", Status: 200},
		{Method: "GET", Path: "/v1/backfills", Status: 401, ErrorCode: httpapi.CodeUnauthorized},
		{Method: "GET", Path: "/v1/backfills", Status: 200},
	}
	if len(got) != len(want) {
		t.Fatalf("%d request lines for %d requests:\n%s", len(got), len(want), logs)
	}
	for i, w := range want {
		g := got[i]
		if g.Method != w.Method || g.Path != w.Path || g.Status != w.Status || g.ErrorCode != w.ErrorCode ||
			g.RequestID == "" || (w.RequestID != "" && g.RequestID != w.RequestID) || g.DurationMS <= 0 {
			t.Errorf("line %d: %+v, want %+v with a request id and a duration", i, g, w)
		}
	}
}

func TestAPanickingHandlerAnswers500AndTheLogSaysWhy(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t, apitest.Options{Users: 5, Mounts: func(d *httpapi.Deps) {
		d.Page = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("page exploded") })
	}})
	r := e.DoRaw(t, http.MethodGet, "/", nil, "Authorization", basic("x", apitest.Token))
	b := requireError(t, r, http.StatusInternalServerError, httpapi.CodeInternal, "")
	id := r.Header.Get("X-Request-Id")
	if !strings.Contains(b.Error.Message, id) || strings.Contains(b.Error.Message, "exploded") {
		t.Fatalf("500 message %q should name request id %s and not the cause", b.Error.Message, id)
	}
	if logs := e.Log.String(); !strings.Contains(logs, "page exploded") || !strings.Contains(logs, `"level":"error"`) {
		t.Fatalf("the log does not carry the panic:\n%s", logs)
	}
}
