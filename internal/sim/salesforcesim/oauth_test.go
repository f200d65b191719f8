package salesforcesim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
)

const callback = "http://127.0.0.1:9/oauth/callback"

// authorize runs the browser leg and returns the code from the callback redirect.
func authorize(t *testing.T, s *Sim, challenge string) string {
	t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {s.ClientID()}, "redirect_uri": {callback},
		"scope": {"api refresh_token"}, "state": {"csrf-1"}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	r := get(t, s.LoginURL()+"/services/oauth2/authorize?"+q.Encode())
	if r.status != http.StatusFound {
		t.Fatalf("authorize = %d %s", r.status, r.body)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), callback+"?") || loc.Query().Get("state") != "csrf-1" {
		t.Fatalf("redirect = %q, want the callback with the state echoed", r.header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func get(t *testing.T, u string) response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return send(t, req)
}

func postForm(t *testing.T, u string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, req)
}

func (s *Sim) tokenForm(grantType string, kv ...string) url.Values {
	f := url.Values{"grant_type": {grantType}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func requestToken(t *testing.T, s *Sim, form url.Values) (TokenResponse, oauthError, int) {
	t.Helper()
	r := postForm(t, s.LoginURL()+"/services/oauth2/token", form)
	var ok TokenResponse
	var bad oauthError
	if r.status == http.StatusOK {
		r.json(t, &ok)
		var raw map[string]any
		r.json(t, &raw)
		if _, has := raw["expires_in"]; has {
			t.Fatalf("token response has expires_in: %s", r.body)
		}
	} else {
		r.json(t, &bad)
	}
	return ok, bad, r.status
}

func TestAuthorizationCodeFlowWithPKCEIssuesSignedTokens(t *testing.T) {
	s := startSim(t, Config{RedirectURIs: []string{callback}})
	verifier := "a-verifier-of-some-length-0123456789-abcdefghijklmnop"
	code := authorize(t, s, s256(verifier))

	tok, bad, status := requestToken(t, s, s.tokenForm("authorization_code", "code", code, "redirect_uri", callback, "code_verifier", verifier))
	if status != http.StatusOK {
		t.Fatalf("exchange = %d %+v", status, bad)
	}
	wantID := s.LoginURL() + "/id/" + s.cfg.OrgID + "/" + s.cfg.UserID
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.InstanceURL != s.InstanceURL() || tok.ID != wantID ||
		tok.TokenType != "Bearer" || tok.Scope != "api refresh_token" {
		t.Fatalf("token response = %+v", tok)
	}
	if ms, err := strconv.ParseInt(tok.IssuedAt, 10, 64); err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Fatalf("issued_at = %q, want milliseconds since the epoch", tok.IssuedAt)
	}
	mac := hmac.New(sha256.New, []byte(s.ClientSecret()))
	mac.Write([]byte(tok.ID + tok.IssuedAt))
	if tok.Signature != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("signature %q does not verify", tok.Signature)
	}
	c := &client{t: t, sim: s, token: tok.AccessToken}
	if r := c.do("GET", "limits", nil); r.status != http.StatusOK {
		t.Fatalf("data call with the new token = %d %s", r.status, r.body)
	}

	// The identity URL answers with the bearer token.
	req, _ := http.NewRequest("GET", tok.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	id := send(t, req)
	var who map[string]any
	id.json(t, &who)
	if id.status != 200 || who["user_id"] != s.cfg.UserID || who["organization_id"] != s.cfg.OrgID || who["username"] == "" {
		t.Fatalf("identity = %d %s", id.status, id.body)
	}
	if s.AuthStats().Grants != 1 {
		t.Fatalf("AuthStats = %+v", s.AuthStats())
	}
}

func TestTokenEndpointAcceptsHTTPBasicClientCredentials(t *testing.T) {
	s := startSim(t, Config{})
	code := authorize(t, s, "")
	req, _ := http.NewRequest("POST", s.LoginURL()+"/services/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.ClientID(), s.ClientSecret())
	if r := send(t, req); r.status != http.StatusOK {
		t.Fatalf("exchange with Basic credentials = %d %s", r.status, r.body)
	}
}

func TestAuthorizeRejectsBadClientAndRedirectWithAnErrorPage(t *testing.T) {
	s := startSim(t, Config{RedirectURIs: []string{callback}})
	for name, q := range map[string]url.Values{
		"unknown client":     {"response_type": {"code"}, "client_id": {"nope"}, "redirect_uri": {callback}},
		"unlisted redirect":  {"response_type": {"code"}, "client_id": {s.ClientID()}, "redirect_uri": {"http://evil.example/cb"}},
		"missing redirect":   {"response_type": {"code"}, "client_id": {s.ClientID()}},
		"not a callback URL": {"response_type": {"code"}, "client_id": {s.ClientID()}, "redirect_uri": {"javascript:x"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := get(t, s.LoginURL()+"/services/oauth2/authorize?"+q.Encode())
			if r.status != http.StatusBadRequest || r.header.Get("Location") != "" ||
				!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("= %d Location %q type %q, want a 400 HTML page", r.status, r.header.Get("Location"), r.header.Get("Content-Type"))
			}
		})
	}
	r := get(t, s.LoginURL()+"/services/oauth2/authorize?"+url.Values{"response_type": {"token"},
		"client_id": {s.ClientID()}, "redirect_uri": {callback}, "state": {"st"}}.Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc.Query().Get("error") != "unsupported_response_type" || loc.Query().Get("state") != "st" {
		t.Fatalf("response_type=token = %d %q, want a redirect carrying the error", r.status, r.header.Get("Location"))
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	s := startSim(t, Config{})
	verifier := "verifier-0123456789-0123456789-0123456789-abcdef"
	cases := []struct {
		name      string
		challenge string
		form      func(code string) url.Values
		err, desc string
	}{
		{"wrong secret", "", func(code string) url.Values {
			f := s.tokenForm("authorization_code", "code", code, "redirect_uri", callback)
			f.Set("client_secret", "wrong")
			return f
		}, "invalid_client", "invalid client credentials"},
		{"unknown client", "", func(code string) url.Values {
			f := s.tokenForm("authorization_code", "code", code, "redirect_uri", callback)
			f.Set("client_id", "other")
			return f
		}, "invalid_client", "invalid client credentials"},
		{"missing grant type", "", func(code string) url.Values {
			f := s.tokenForm("", "code", code)
			f.Del("grant_type")
			return f
		}, "invalid_request", "grant type is missing"},
		{"unsupported grant type", "", func(string) url.Values { return s.tokenForm("password") },
			"unsupported_grant_type", "grant type not supported"},
		{"PKCE verifier mismatch", s256(verifier), func(code string) url.Values {
			return s.tokenForm("authorization_code", "code", code, "redirect_uri", callback, "code_verifier", "other-verifier")
		}, "invalid_request", "invalid code verifier"},
		{"PKCE verifier missing", s256(verifier), func(code string) url.Values {
			return s.tokenForm("authorization_code", "code", code, "redirect_uri", callback)
		}, "invalid_grant", "invalid code verifier"},
		{"redirect_uri mismatch", "", func(code string) url.Values {
			return s.tokenForm("authorization_code", "code", code, "redirect_uri", callback+"/other")
		}, "invalid_grant", "redirect_uri mismatch"},
		{"unknown code", "", func(string) url.Values {
			return s.tokenForm("authorization_code", "code", "made-up", "redirect_uri", callback)
		}, "invalid_grant", "invalid authorization code"},
		{"unknown refresh token", "", func(string) url.Values { return s.tokenForm("refresh_token", "refresh_token", "nope") },
			"invalid_grant", "expired access/refresh token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := authorize(t, s, tc.challenge)
			_, bad, status := requestToken(t, s, tc.form(code))
			if status != http.StatusBadRequest || bad.Error != tc.err || bad.Description != tc.desc {
				t.Fatalf("= %d %+v, want 400 %s %q", status, bad, tc.err, tc.desc)
			}
		})
	}

	t.Run("reused code", func(t *testing.T) {
		code := authorize(t, s, s256(verifier))
		form := s.tokenForm("authorization_code", "code", code, "redirect_uri", callback, "code_verifier", verifier)
		if _, bad, status := requestToken(t, s, form); status != http.StatusOK {
			t.Fatalf("first exchange = %d %+v", status, bad)
		}
		if _, bad, status := requestToken(t, s, form); status != http.StatusBadRequest || bad.Error != "invalid_grant" {
			t.Fatalf("second exchange = %d %+v, want invalid_grant", status, bad)
		}
	})
}

func TestAuthorizationCodeExpires(t *testing.T) {
	now := clock.NewManual(time.Now())
	s := startSim(t, Config{CodeTTL: time.Minute, Now: now.Now})
	code := authorize(t, s, "")
	now.Advance(time.Minute + time.Millisecond)
	_, bad, status := requestToken(t, s, s.tokenForm("authorization_code", "code", code, "redirect_uri", callback))
	if status != http.StatusBadRequest || bad.Error != "invalid_grant" || bad.Description != "authorization code expired" {
		t.Fatalf("late exchange = %d %+v", status, bad)
	}
}

func TestRefreshRotatesAndReusingARotatedTokenRevokesTheGrant(t *testing.T) {
	s := startSim(t, Config{})
	first := s.MintTokens("api refresh_token")

	second, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", first.RefreshToken))
	if status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken ||
		second.AccessToken == first.AccessToken {
		t.Fatalf("refresh = %d %+v %+v, want a new access and a new refresh token", status, second, bad)
	}
	third, _, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", second.RefreshToken))
	if status != http.StatusOK {
		t.Fatalf("refresh with the rotated token = %d", status)
	}
	// The first access token still works until the grant is revoked.
	if r := (&client{t: t, sim: s, token: first.AccessToken}).do("GET", "limits", nil); r.status != 200 {
		t.Fatalf("older access token before reuse = %d", r.status)
	}

	_, bad, status = requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", first.RefreshToken))
	if status != http.StatusBadRequest || bad.Error != "invalid_grant" || bad.Description != "expired access/refresh token" {
		t.Fatalf("reuse of a rotated token = %d %+v", status, bad)
	}
	// Reuse revoked the whole family: the current refresh token and every access token.
	if _, bad, status = requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", third.RefreshToken)); status != 400 {
		t.Fatalf("current refresh token after reuse = %d %+v, want invalid_grant", status, bad)
	}
	for _, at := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
		r := (&client{t: t, sim: s, token: at}).do("GET", "limits", nil)
		if r.status != http.StatusUnauthorized || r.errorCode(t) != "INVALID_SESSION_ID" {
			t.Fatalf("access token after reuse = %d %s", r.status, r.body)
		}
	}
	st := s.AuthStats()
	if st.Refreshes != 2 || st.Rotations != 2 || st.ReuseDetected != 1 || st.RevokedGrants != 1 || st.InvalidGrants != 2 {
		t.Fatalf("AuthStats = %+v", st)
	}
}

func TestRefreshWithoutRotationKeepsTheRefreshToken(t *testing.T) {
	s := startSim(t, Config{DisableRotation: true})
	first := s.MintTokens("api refresh_token")
	for range 2 {
		tok, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", first.RefreshToken))
		if status != http.StatusOK || tok.RefreshToken != "" || tok.AccessToken == "" {
			t.Fatalf("refresh = %d %+v %+v, want an access token and no refresh_token", status, tok, bad)
		}
	}
}

func TestNoRefreshTokenWithoutTheScope(t *testing.T) {
	s := startSim(t, Config{})
	if tok := s.MintTokens("api"); tok.RefreshToken != "" {
		t.Fatalf("scope api granted a refresh token")
	}
	if tok := s.MintTokens("api offline_access"); tok.RefreshToken == "" {
		t.Fatalf("scope offline_access granted no refresh token")
	}
}

func TestSessionsExpire(t *testing.T) {
	t.Run("after SessionTTL", func(t *testing.T) {
		now := clock.NewManual(time.Now())
		s := startSim(t, Config{SessionTTL: time.Hour, Now: now.Now})
		c := newClient(t, s)
		if r := c.do("GET", "limits", nil); r.status != 200 {
			t.Fatalf("fresh token = %d", r.status)
		}
		now.Advance(time.Hour + time.Millisecond)
		r := c.do("GET", "limits", nil)
		var errs []apiError
		r.json(t, &errs)
		if r.status != http.StatusUnauthorized || errs[0].ErrorCode != "INVALID_SESSION_ID" || errs[0].Message != "Session expired or invalid" {
			t.Fatalf("expired token = %d %s", r.status, r.body)
		}
	})
	t.Run("on ExpireSessions, refresh still works", func(t *testing.T) {
		s := startSim(t, Config{SessionTTL: -1})
		tok := s.MintTokens("api refresh_token")
		s.ExpireSessions()
		if r := (&client{t: t, sim: s, token: tok.AccessToken}).do("GET", "limits", nil); r.status != 401 {
			t.Fatalf("after ExpireSessions = %d", r.status)
		}
		fresh, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", tok.RefreshToken))
		if status != 200 {
			t.Fatalf("refresh after expiry = %d %+v", status, bad)
		}
		if r := (&client{t: t, sim: s, token: fresh.AccessToken}).do("GET", "limits", nil); r.status != 200 {
			t.Fatalf("refreshed token = %d", r.status)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		s := startSim(t, Config{})
		if r := (&client{t: t, sim: s, token: "made-up"}).do("GET", "limits", nil); r.status != 401 {
			t.Fatalf("unknown token = %d", r.status)
		}
	})
}

func TestRevoke(t *testing.T) {
	s := startSim(t, Config{})
	revoke := func(tok string) response {
		return postForm(t, s.LoginURL()+"/services/oauth2/revoke", url.Values{"token": {tok}})
	}
	status := func(tok string) int { return (&client{t: t, sim: s, token: tok}).do("GET", "limits", nil).status }

	a := s.MintTokens("api refresh_token")
	b, _, _ := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", a.RefreshToken))
	if r := revoke(a.AccessToken); r.status != http.StatusOK {
		t.Fatalf("revoke access token = %d %s", r.status, r.body)
	}
	if status(a.AccessToken) != 401 || status(b.AccessToken) != 200 {
		t.Fatalf("revoking one access token must leave the grant's others alone")
	}
	if r := revoke(b.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("revoke refresh token = %d %s", r.status, r.body)
	}
	if status(b.AccessToken) != 401 {
		t.Fatalf("revoking the refresh token must revoke its access tokens")
	}
	if _, bad, st := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", b.RefreshToken)); st != 400 || bad.Error != "invalid_grant" {
		t.Fatalf("refresh after revoke = %d %+v", st, bad)
	}
	r := revoke("never-issued")
	var bad oauthError
	r.json(t, &bad)
	if r.status != http.StatusBadRequest || bad.Error != "invalid_token" {
		t.Fatalf("revoke unknown = %d %s", r.status, r.body)
	}
}

func TestASixthGrantRevokesTheOldest(t *testing.T) {
	s := startSim(t, Config{})
	var grants []TokenResponse
	for range 6 {
		grants = append(grants, s.MintTokens("api refresh_token"))
	}
	_, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", grants[0].RefreshToken))
	if status != 400 || bad.Description != "expired access/refresh token" {
		t.Fatalf("oldest grant after a sixth = %d %+v", status, bad)
	}
	for i, g := range grants[1:] {
		if _, bad, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", g.RefreshToken)); status != 200 {
			t.Fatalf("grant %d = %d %+v, want alive", i+1, status, bad)
		}
	}
}

func TestRevokeAllEndsEveryGrant(t *testing.T) {
	s := startSim(t, Config{})
	a, b := s.MintTokens(""), s.MintTokens("")
	s.RevokeAll()
	for _, g := range []TokenResponse{a, b} {
		if _, _, status := requestToken(t, s, s.tokenForm("refresh_token", "refresh_token", g.RefreshToken)); status != 400 {
			t.Fatalf("refresh after RevokeAll = %d", status)
		}
	}
	if st := s.AuthStats(); st.RevokedGrants != 2 {
		t.Fatalf("AuthStats = %+v", st)
	}
}

func TestHostsServeOnlyTheirOwnEndpoints(t *testing.T) {
	s := startSim(t, Config{})
	tok := s.MintTokens("")
	req, _ := http.NewRequest("GET", s.LoginURL()+"/services/data/"+testVersion+"/limits", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if r := send(t, req); r.status != http.StatusNotFound {
		t.Fatalf("data call on the login host = %d", r.status)
	}
	r := postForm(t, s.InstanceURL()+"/services/oauth2/token", s.tokenForm("refresh_token", "refresh_token", tok.RefreshToken))
	if r.status != http.StatusNotFound {
		t.Fatalf("token call on the instance = %d", r.status)
	}
	var body []apiError
	if json.Unmarshal(r.body, &body) != nil || body[0].ErrorCode != "NOT_FOUND" {
		t.Fatalf("instance 404 body = %s", r.body)
	}
}
