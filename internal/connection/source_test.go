package connection_test

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestTwoProcessesRefreshingUnderRotationNeverPresentAStaleToken(t *testing.T) {
	// Sessions far shorter than Salesforce's 15-minute minimum, yet longer than a goroutine
	// of a loaded -race run may stall between a 401 and its retry.
	e := newEnv(t, salesforcesim.Config{SessionTTL: 600 * time.Millisecond}, connection.OAuthConfig{})
	e.connect()
	processes := []*connection.Source{e.newSource(connection.SourceConfig{}), e.newSource(connection.SourceConfig{})}

	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(2500 * time.Millisecond)
	for _, src := range processes {
		client := e.dataClient(src)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					calls.Add(1)
					if _, err := client.Limits(e.ctx); err != nil {
						failures.Add(1)
						t.Errorf("data call: %v", err)
					}
					if g, _, err := e.store.Grant(e.ctx); err == nil {
						e.remember(g.AccessToken, g.RefreshToken)
					}
				}
			}()
		}
	}
	wg.Wait()

	stats := e.sim.AuthStats()
	t.Logf("%d calls, %d failed; Salesforce: %+v", calls.Load(), failures.Load(), stats)
	if stats.InvalidGrants != 0 || stats.ReuseDetected != 0 || stats.RevokedGrants != 0 {
		t.Errorf("a stale refresh token reached Salesforce: %+v", stats)
	}
	if stats.Refreshes < 3 {
		t.Errorf("%d refreshes in 2.5s of 600ms sessions; the test did not exercise refreshing", stats.Refreshes)
	}
	if st := e.status(); st.State != connection.Connected || st.LastRefresh == nil {
		t.Errorf("status after the run = %+v", st)
	}
	if !hasEvent(e.events(), connection.EventTokenRefreshed) {
		t.Errorf("no token_refreshed event")
	}
}

func TestConcurrentRefreshesOfOneStaleTokenRefreshOnce(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	e.connect()
	processes := []*connection.Source{e.newSource(connection.SourceConfig{}), e.newSource(connection.SourceConfig{})}
	stale, err := processes[0].Token(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := e.sim.AuthStats().Refreshes

	fresh := make(chan string, 16)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := processes[i%2].Refresh(e.ctx, stale)
			if err != nil {
				t.Errorf("Refresh: %v", err)
				return
			}
			fresh <- c.AccessToken
		}()
	}
	wg.Wait()
	close(fresh)
	e.rememberGrant()

	if n := e.sim.AuthStats().Refreshes - before; n != 1 {
		t.Errorf("16 refreshes of one stale token made %d token requests, want 1", n)
	}
	seen := map[string]bool{}
	for tok := range fresh {
		seen[tok] = true
	}
	if len(seen) != 1 || seen[stale.AccessToken] {
		t.Errorf("callers got %d distinct tokens (stale among them: %v), want the one new token", len(seen), seen[stale.AccessToken])
	}
}

// refreshElsewhere presents the stored refresh token as a leaked copy would, rotating it out
// from under the connection.
func (e *env) refreshElsewhere(refreshToken string) {
	e.t.Helper()
	resp, err := http.PostForm(e.sim.LoginURL()+"/services/oauth2/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {e.sim.ClientID()}, "client_secret": {e.sim.ClientSecret()},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok salesforcesim.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("refresh elsewhere: %d %v", resp.StatusCode, err)
	}
	e.remember(tok.AccessToken, tok.RefreshToken)
}

func TestLostGrantMovesConnectionToNeedsReauthUntilReconnected(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lose      func(e *env, g connection.Grant)
		lastError string
	}{
		{"reused refresh token", func(e *env, g connection.Grant) { e.refreshElsewhere(g.RefreshToken) }, "already used or revoked"},
		{"revoked integration user", func(e *env, g connection.Grant) { e.sim.RevokeAll() }, "expired access/refresh token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
			g := e.connect()
			client := e.dataClient(e.newSource(connection.SourceConfig{}))
			if _, err := client.Limits(e.ctx); err != nil {
				t.Fatal(err)
			}
			tc.lose(e, g)
			e.sim.ExpireSessions()

			_, err := client.Limits(e.ctx)
			if !errors.Is(err, salesforce.ErrAuth) {
				t.Fatalf("data call after losing the grant: %v, want ErrAuth", err)
			}
			e.noSecrets("the error", err.Error())
			st := e.status()
			if st.State != connection.NeedsReauth || !strings.Contains(st.LastError, tc.lastError) || st.LastErrorAt == nil {
				t.Errorf("status = %+v, want needs_reauth saying %q", st, tc.lastError)
			}
			if !hasEvent(e.events(), connection.EventNeedsReauth) {
				t.Errorf("no needs_reauth event")
			}

			// A known-dead grant is not presented again.
			tokenCalls := e.sim.AuthStats().InvalidGrants
			if _, err := client.Limits(e.ctx); !errors.Is(err, salesforce.ErrAuth) {
				t.Errorf("second call: %v, want ErrAuth", err)
			}
			if n := e.sim.AuthStats().InvalidGrants; n != tokenCalls {
				t.Errorf("the dead refresh token was presented again (%d invalid_grant answers, was %d)", n, tokenCalls)
			}

			// Reconnecting heals the same client: its next call uses the new grant.
			e.connect()
			if _, err := client.Limits(e.ctx); err != nil {
				t.Errorf("data call after reconnecting: %v", err)
			}
			if st := e.status(); st.State != connection.Connected || st.LastError != "" {
				t.Errorf("status after reconnecting = %+v", st)
			}
		})
	}
}

func TestWrongSecretKeyIsAClearAuthError(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	e.connect()
	wrong := make([]byte, 32)
	_, _ = rand.Read(wrong)
	other := e.newStore(e.redis.Client(t), wrong)

	if _, _, err := other.Grant(e.ctx); !errors.Is(err, connection.ErrSecretKey) || !strings.Contains(err.Error(), "BACKFILL_SECRET_KEY") {
		t.Errorf("Grant under the wrong key: %v", err)
	}
	src := connection.NewSource(other, connection.SourceConfig{ClientID: e.sim.ClientID(), ClientSecret: e.sim.ClientSecret(), Logger: e.log})
	if _, err := src.Token(e.ctx); !errors.Is(err, salesforce.ErrAuth) || !errors.Is(err, connection.ErrSecretKey) {
		t.Errorf("Token under the wrong key: %v, want ErrAuth and ErrSecretKey", err)
	}
	st, err := other.Status(e.ctx)
	if err != nil || st.State != connection.NeedsReauth || !strings.Contains(st.LastError, "BACKFILL_SECRET_KEY") {
		t.Errorf("Status under the wrong key = %+v, %v", st, err)
	}
	if _, err := connection.NewStore(e.redis.Client(t), wrong[:16], ""); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Errorf("NewStore with a 16-byte key: %v", err)
	}
}

func TestRefreshAfterRenewsSessionsBeforeSalesforceEndsThem(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{SessionTTL: time.Second}, connection.OAuthConfig{})
	e.connect()
	client := e.dataClient(e.newSource(connection.SourceConfig{RefreshAfter: 200 * time.Millisecond}))
	for deadline := time.Now().Add(1200 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := client.Limits(e.ctx); err != nil {
			t.Fatalf("data call: %v", err)
		}
		e.rememberGrant()
	}
	for _, c := range e.sim.Calls() {
		if c.Status == http.StatusUnauthorized {
			t.Errorf("%d calls to %s met a 401 despite early refreshes", c.Count, c.Endpoint)
		}
	}
	if n := e.sim.AuthStats().Refreshes; n < 3 {
		t.Errorf("%d refreshes in 1.2s with RefreshAfter 200ms, want at least 3", n)
	}
}

// tokenHook runs fn once, as the first token request leaves, before it reaches Salesforce.
type tokenHook struct {
	once sync.Once
	fn   func()
}

func (h *tokenHook) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/services/oauth2/token") {
		h.once.Do(h.fn)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestReconnectDuringARefreshKeepsTheNewGrant(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	e.connect()
	minted := e.sim.MintTokens("api refresh_token")
	e.remember(minted.AccessToken, minted.RefreshToken)
	hook := &tokenHook{fn: func() {
		err := e.store.Connect(e.ctx, connection.Grant{
			AccessToken: minted.AccessToken, RefreshToken: minted.RefreshToken, InstanceURL: minted.InstanceURL,
			IdentityURL: minted.ID, LoginURL: e.sim.LoginURL(), IssuedAt: time.Now(),
		}, connection.Status{})
		if err != nil {
			t.Errorf("reconnect: %v", err)
		}
	}}
	src := e.newSource(connection.SourceConfig{HTTPClient: &http.Client{Transport: hook}})
	stale, err := src.Token(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	got, err := src.Refresh(e.ctx, stale)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got.AccessToken != minted.AccessToken {
		t.Errorf("Refresh returned the superseded grant's token, want the reconnected one")
	}
	if g := e.rememberGrant(); g.RefreshToken != minted.RefreshToken {
		t.Errorf("the refresh overwrote the grant a reconnect stored")
	}
	if n := e.sim.AuthStats().RevokedGrants; n != 1 {
		t.Errorf("%d grants revoked, want the orphaned refresh's grant", n)
	}
}
