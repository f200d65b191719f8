package connection_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestConnectFlowWithPKCEStoresASealedGrantAndReportsConnected(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{Environment: "sandbox"})
	var hookRuns atomic.Int32
	e.auth.OnConnected(func(context.Context) { hookRuns.Add(1) })

	b := newBrowser()
	status, final, body := b.connect(t, e.server.URL)
	if status != http.StatusOK || final.Path != "/" || final.Query().Get("connected") != "1" {
		t.Fatalf("flow ended at %s with %d: %s", final, status, body)
	}
	if len(b.visited) != 3 {
		t.Fatalf("visited %d redirects (%v), want authorize, callback, settings", len(b.visited), b.visited)
	}
	authorize := b.visited[0].Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": e.sim.ClientID(), "scope": "api refresh_token",
		"code_challenge_method": "S256", "redirect_uri": e.server.URL + callbackPath,
	} {
		if got := authorize.Get(k); got != want {
			t.Errorf("authorize %s = %q, want %q", k, got, want)
		}
	}
	// A challenge is a base64url SHA-256: 43 characters. The simulator refuses the code
	// exchange unless the verifier hashes to it, so connecting at all proves PKCE.
	if c := authorize.Get("code_challenge"); len(c) != 43 {
		t.Errorf("code_challenge %q is not a base64url SHA-256", c)
	}
	if len(authorize.Get("state")) < 32 {
		t.Errorf("state %q is too short to be unguessable", authorize.Get("state"))
	}

	g := e.rememberGrant()
	st := e.status()
	if st.State != connection.Connected || st.OrgID != orgID || st.UserID != userID || st.Username != username ||
		st.Environment != "sandbox" || st.InstanceURL != e.sim.InstanceURL() || st.ConnectedAt == nil {
		t.Errorf("status = %+v, want connected to %s/%s as %s in sandbox at %s", st, orgID, userID, username, e.sim.InstanceURL())
	}
	if g.LoginURL != e.sim.LoginURL() || g.RefreshToken == "" {
		t.Errorf("grant login %q, refresh token set %v", g.LoginURL, g.RefreshToken != "")
	}
	if n := hookRuns.Load(); n != 1 {
		t.Errorf("OnConnected ran %d times, want 1", n)
	}
	if !hasEvent(e.events(), connection.EventConnected) {
		t.Errorf("no connected event in %+v", e.events())
	}

	// Everything the connection keeps in Redis, read raw: no token in clear.
	rdb := e.redis.Client(t)
	keys, err := rdb.Keys(e.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		raw, _ := rdb.Dump(e.ctx, k).Result()
		e.noSecrets("redis key "+k, raw)
	}

	// The stored grant works for data calls.
	if _, err := e.dataClient(e.newSource(connection.SourceConfig{})).Limits(e.ctx); err != nil {
		t.Fatalf("a data call with the connected grant: %v", err)
	}
}

func TestCallbackRefusesBadStatesWith400NamingTheReason(t *testing.T) {
	now := clock.NewManual(time.Now())
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{StateTTL: time.Minute, Now: now.Now})

	used := e.authorize()
	if status, _, body := newBrowser().get(t, used.String()); status != http.StatusOK {
		t.Fatalf("first callback: %d %s", status, body)
	}
	e.rememberGrant()
	grants := e.sim.AuthStats().Grants

	late := e.authorize()
	now.Advance(time.Minute + time.Millisecond)

	noState := e.authorize()
	q := noState.Query()
	q.Del("state")
	noState.RawQuery = q.Encode()

	forged := e.authorize()
	q = forged.Query()
	q.Set("state", "c3RhdGUtdGhhdC13YXMtbmV2ZXItaXNzdWVkLWhlcmUtYXQtYWxs")
	forged.RawQuery = q.Encode()

	for _, tc := range []struct {
		reason string
		url    string
	}{
		{connection.StateMissing, noState.String()},
		{connection.StateUnknown, forged.String()},
		{connection.StateExpired, late.String()},
		{connection.StateReused, used.String()},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			resp, err := noRedirects.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			if !strings.Contains(body, "OAuth state "+tc.reason) {
				t.Errorf("page does not say the state is %s: %s", tc.reason, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want an HTML page", ct)
			}
			e.noSecrets("the error page", body)
		})
	}
	if n := e.sim.AuthStats().Grants; n != grants {
		t.Errorf("refused callbacks exchanged codes: %d grants, want %d", n, grants)
	}
}

func TestTwoCallbacksRacingWithOneStateConnectOnce(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	cb := e.authorize()
	statuses := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := noRedirects.Get(cb.String())
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	got := map[int]int{<-statuses: 1}
	got[<-statuses]++
	if got[http.StatusFound] != 1 || got[http.StatusBadRequest] != 1 {
		t.Errorf("statuses %v, want one 302 and one 400", got)
	}
	if n := e.sim.AuthStats().Grants; n != 1 {
		t.Errorf("%d grants, want 1", n)
	}
	e.rememberGrant()
}

func TestDeniedConsentSaysSoAndConnectsNothing(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	cb := e.authorize()
	q := cb.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	q.Set("error_description", "end-user denied authorization")
	cb.RawQuery = q.Encode()

	resp, err := noRedirects.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "access_denied") || !strings.Contains(body, "declined") {
		t.Errorf("denied consent answered %d: %s", resp.StatusCode, body)
	}
	if st := e.status(); st.State != connection.Disconnected {
		t.Errorf("state %s after a denial, want disconnected", st.State)
	}
	if !hasEvent(e.events(), connection.EventConnectFailed) {
		t.Errorf("no connect_failed event")
	}
	// The denied attempt's state is spent: replaying it with a code is refused.
	q.Del("error")
	q.Set("code", "aPrxStolenCode")
	cb.RawQuery = q.Encode()
	resp2, err := noRedirects.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusBadRequest {
		t.Errorf("a spent state answered %d, want 400", resp2.StatusCode)
	}
}

func TestCodeRefusedBySalesforceIsABadGatewayPage(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	cb := e.authorize()
	q := cb.Query()
	q.Set("code", "aPrxNotIssuedBySalesforce")
	cb.RawQuery = q.Encode()
	resp, err := noRedirects.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid_grant") {
		t.Errorf("answered %d: %s", resp.StatusCode, body)
	}
	e.noSecrets("the error page", body)
}

func TestDisconnectRevokesTheGrantAtSalesforceAndForgetsIt(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	e.connect()
	src := e.newSource(connection.SourceConfig{})
	client := e.dataClient(src)
	if _, err := client.Limits(e.ctx); err != nil {
		t.Fatalf("data call before disconnect: %v", err)
	}

	if err := e.auth.Disconnect(e.ctx); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if n := e.sim.AuthStats().RevokedGrants; n != 1 {
		t.Errorf("Salesforce revoked %d grants, want 1", n)
	}
	if st := e.status(); st.State != connection.Disconnected || st.OrgID != "" {
		t.Errorf("status after disconnect = %+v", st)
	}
	if _, _, err := e.store.Grant(e.ctx); !errors.Is(err, connection.ErrNoGrant) {
		t.Errorf("Grant after disconnect: %v, want ErrNoGrant", err)
	}
	if !hasEvent(e.events(), connection.EventDisconnected) {
		t.Errorf("no disconnected event")
	}
	// The source still holds the revoked token in memory: Salesforce refuses it, and the
	// refresh finds nothing to refresh with.
	_, err := client.Limits(e.ctx)
	if !errors.Is(err, connection.ErrNoGrant) {
		t.Errorf("data call after disconnect: %v, want ErrNoGrant", err)
	}
	if err := e.auth.Disconnect(e.ctx); err != nil {
		t.Errorf("a second Disconnect: %v", err)
	}
}

func TestReconnectRevokesTheGrantItReplaces(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	first := e.connect()
	second := e.connect()
	if first.RefreshToken == second.RefreshToken {
		t.Fatal("the second connect stored the first grant")
	}
	if n := e.sim.AuthStats().RevokedGrants; n != 1 {
		t.Errorf("Salesforce revoked %d grants, want the replaced one", n)
	}
}

func TestConnectWithoutAppSettingsSaysWhichIsMissing(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	a := connection.NewAuthorizer(e.store, connection.OAuthConfig{ClientID: "id", ClientSecret: "secret"})
	if _, err := a.Begin(e.ctx); err == nil || !strings.Contains(err.Error(), "SALESFORCE_REDIRECT_URL") {
		t.Errorf("Begin without a redirect URL: %v", err)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConnectGoesToTheEnvironmentChosenWhenTheAttemptBegins(t *testing.T) {
	// The operator switched to another org's login host (say, a sandbox) on the settings
	// page: the attempt must start and finish there, without a restart.
	var other *salesforcesim.Sim
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{
		Environment: "production",
		EnvironmentFor: func(context.Context) (string, string) {
			return "sandbox", other.LoginURL()
		},
	})
	var err error
	other, err = salesforcesim.Start(salesforcesim.Config{
		ClientID: e.sim.ClientID(), ClientSecret: e.sim.ClientSecret(),
		OrgID: orgID, UserID: userID, Username: username,
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })

	b := newBrowser()
	if status, final, body := b.connect(t, e.server.URL); status != http.StatusOK || final.Query().Get("connected") != "1" {
		t.Fatalf("flow ended at %s with %d: %s", final, status, body)
	}
	if host := b.visited[0].Host; !strings.Contains(other.LoginURL(), host) {
		t.Fatalf("authorize went to %s, want the chosen environment's login host %s", host, other.LoginURL())
	}
	g := e.rememberGrant()
	if g.LoginURL != other.LoginURL() || g.InstanceURL != other.InstanceURL() {
		t.Fatalf("grant from %s at %s; want %s at %s", g.LoginURL, g.InstanceURL, other.LoginURL(), other.InstanceURL())
	}
	if st := e.status(); st.Environment != "sandbox" {
		t.Fatalf("status environment %q, want sandbox", st.Environment)
	}
}
