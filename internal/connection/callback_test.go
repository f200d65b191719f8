package connection_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// stateKeys counts the connect attempts remembered in Redis.
func (e *env) stateKeys() int {
	e.t.Helper()
	keys, err := e.redis.Client(e.t).Keys(e.ctx, "*:oauth-state:*").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(keys)
}

// send makes one request without following redirects.
func (e *env) send(method, path string, header ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.server.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(body)
}

// A connect replaces the org's grant and revokes the old one, so nothing but a POST from
// this site's own page may start one: a GET only offers the button, and a cross-site fetch
// of either kind is refused before an attempt is remembered.
func TestConnectStartsOnlyFromAPostOfThisSite(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	resp, body := e.send(http.MethodGet, "/salesforce/connect")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" ||
		!strings.Contains(body, `method="post"`) || !strings.Contains(body, `action="/salesforce/connect"`) {
		t.Fatalf("GET /salesforce/connect answered %d (Location %q): %s; want a page with a POST form", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("the connect page can be framed: X-Frame-Options %q", resp.Header.Get("X-Frame-Options"))
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, site := range []string{"cross-site", "same-site"} {
			if resp, body := e.send(method, "/salesforce/connect", "Sec-Fetch-Site", site); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s /salesforce/connect from a %s fetch answered %d: %s", method, site, resp.StatusCode, body)
			}
		}
	}
	if n := e.stateKeys(); n != 0 {
		t.Fatalf("%d connect attempts started by GETs and cross-site fetches", n)
	}
	resp, _ = e.send(http.MethodPost, "/salesforce/connect", "Sec-Fetch-Site", "same-origin")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.sim.LoginURL()+"/services/oauth2/authorize?") {
		t.Fatalf("POST /salesforce/connect answered %d to %q, want 303 to the authorize URL", resp.StatusCode, loc)
	}
	if n := e.stateKeys(); n != 1 {
		t.Fatalf("%d connect attempts after one POST, want 1", n)
	}
}

// errorCallback is the callback Salesforce sends when it refuses, with the state given.
func errorCallback(state, description string) string {
	q := url.Values{"error": {"access_denied"}, "error_description": {description}}
	if state != "" {
		q.Set("state", state)
	}
	return callbackPath + "?" + q.Encode()
}

// Anyone can send a browser to the callback. Only a callback with a state this server issued,
// once, may write to the activity log, and never more than a short line.
func TestRefusedCallbacksRecordOnlyWithAValidStateAndOnlyAShortText(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	huge := strings.Repeat("A", 64<<10)
	for _, state := range []string{"", "forged-state-of-an-attacker"} {
		if resp, body := e.send(http.MethodGet, errorCallback(state, huge)); resp.StatusCode != http.StatusBadRequest || strings.Contains(body, huge[:300]) {
			t.Fatalf("a refusal with state %q answered %d and echoed %d bytes", state, resp.StatusCode, len(body))
		}
		if resp, _ := e.send(http.MethodGet, callbackPath+"?code=x&state="+url.QueryEscape(state)); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a code with state %q answered %d", state, resp.StatusCode)
		}
	}
	if evs := e.events(); len(evs) != 0 {
		t.Fatalf("callbacks without a valid state wrote %d events, first %.200q", len(evs), evs[0].Message)
	}

	state := e.authorize().Query().Get("state")
	for range 2 { // the second is a replay of a spent state
		if resp, _ := e.send(http.MethodGet, errorCallback(state, huge)); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a refusal with a valid state answered %d", resp.StatusCode)
		}
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Kind != connection.EventConnectFailed || !strings.Contains(evs[0].Message, "access_denied") {
		t.Fatalf("events %+v, want one connect_failed naming access_denied", evs)
	}
	if n := len(evs[0].Message); n > 1024 {
		t.Errorf("the recorded refusal is %d bytes long", n)
	}
	for line := range strings.Lines(e.logs.String()) {
		if len(line) > 2048 {
			t.Errorf("a log line of %d bytes: %.200s", len(line), line)
		}
	}
}

// The callback answers without the token, so it is rate-limited: past the limit it answers
// 429 and touches no state.
func TestTheCallbackIsRateLimited(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{CallbacksPerMinute: 3})
	for i := range 3 {
		if resp, _ := e.send(http.MethodGet, errorCallback("forged", "x")); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("callback %d answered %d, want 400", i+1, resp.StatusCode)
		}
	}
	resp, _ := e.send(http.MethodGet, errorCallback("forged", "x"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the 4th callback in a minute answered %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
func TestACallbackFailingOnOurSideShowsNoCauseAndLogsIt(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	cb := e.authorize()
	e.redis.Stop()
	resp, err := noRedirects.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "the server log has the cause") {
		t.Fatalf("answered %d: %s", resp.StatusCode, body)
	}
	for _, leak := range []string{"dial", "connection refused", "127.0.0.1", "OAuth state"} {
		if strings.Contains(body, leak) {
			t.Fatalf("the page shows the cause (%q): %s", leak, body)
		}
	}
	if logs := e.logs.String(); !strings.Contains(logs, "the OAuth callback failed") || !strings.Contains(logs, "check OAuth state") {
		t.Fatalf("the log lacks the cause:\n%s", logs)
	}
}
