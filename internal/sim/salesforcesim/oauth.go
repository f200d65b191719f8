package salesforcesim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxGrantsPerUser is Salesforce's limit of access grants per user per connected app: a
// sixth grant revokes the oldest (reference §1.6).
const maxGrantsPerUser = 5

// TokenResponse is the token endpoint's answer. It has no expires_in: Salesforce never says
// when an access token expires.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Signature    string `json:"signature"`
	Scope        string `json:"scope"`
	InstanceURL  string `json:"instance_url"`
	ID           string `json:"id"`
	TokenType    string `json:"token_type"`
	IssuedAt     string `json:"issued_at"`
}

// AuthStats counts what the login host did, for tests of token handling.
type AuthStats struct {
	Grants        int // grants issued (code exchanges and MintTokens)
	Refreshes     int // successful refresh_token grants
	Rotations     int // refreshes that issued a new refresh token
	InvalidGrants int // token requests answered invalid_grant
	ReuseDetected int // rotated-out refresh tokens presented again
	RevokedGrants int // grants revoked: by reuse, the grant limit, revoke calls or RevokeAll
}

type grant struct {
	scope   string
	refresh string // the current refresh token; "" when the scope grants none
	revoked bool
	used    time.Time // when the refresh token was issued or last used (RefreshIdle)
}

type accessToken struct {
	grant   *grant
	expires time.Time // zero: never
	revoked bool
}

type authCode struct {
	redirectURI string
	challenge   string
	scope       string
	expires     time.Time
}

type authState struct {
	codes   map[string]*authCode
	access  map[string]*accessToken
	refresh map[string]*grant // current refresh tokens
	stale   map[string]*grant // rotated-out refresh tokens, kept to detect reuse
	grants  []*grant          // live grants, oldest first
	stats   AuthStats
}

func (a *authState) init() {
	a.codes = make(map[string]*authCode)
	a.access = make(map[string]*accessToken)
	a.refresh = make(map[string]*grant)
	a.stale = make(map[string]*grant)
}

func (s *Sim) loginHandler() http.Handler {
	rt := newRoutes()
	rt.handle("GET /services/oauth2/authorize", "GET oauth2/authorize", s.handleAuthorize)
	rt.handle("POST /services/oauth2/token", "POST oauth2/token", s.handleToken)
	rt.handle("POST /services/oauth2/revoke", "POST oauth2/revoke", s.handleRevoke)
	rt.handle("GET /services/oauth2/revoke", "GET oauth2/revoke", s.handleRevoke)
	rt.handle("GET /id/{org}/{user}", "GET id", s.handleIdentity)
	return host{sim: s, routes: rt}
}

// handleAuthorize auto-approves as if the integration user had logged in and clicked Allow.
func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.cfg.ClientID {
		// Salesforce shows an error page rather than redirecting to an unverified callback.
		authorizePage(w, "invalid_client_id", "client identifier invalid")
		return
	}
	redirect := q.Get("redirect_uri")
	if !s.redirectAllowed(redirect) {
		authorizePage(w, "redirect_uri_mismatch", "redirect_uri must match configuration")
		return
	}
	target, _ := url.Parse(redirect) // redirectAllowed parsed it
	params := target.Query()
	if state := q.Get("state"); state != "" {
		params.Set("state", state)
	}
	if q.Get("response_type") != "code" {
		params.Set("error", "unsupported_response_type")
		params.Set("error_description", "response type not supported")
		target.RawQuery = params.Encode()
		http.Redirect(w, r, target.String(), http.StatusFound)
		return
	}
	scope := normalizeScope(q.Get("scope"))
	code := "aPrx" + randomToken(24)
	s.mu.Lock()
	// The challenge is taken as S256 whatever code_challenge_method says: jsforce sends no
	// method at all, and no Salesforce source shows another being honoured (UNCONFIRMED).
	s.auth.codes[code] = &authCode{
		redirectURI: redirect,
		challenge:   q.Get("code_challenge"),
		scope:       scope,
		expires:     s.cfg.Now().Add(s.cfg.CodeTTL),
	}
	s.mu.Unlock()
	params.Set("code", code)
	target.RawQuery = params.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

func (s *Sim) redirectAllowed(uri string) bool {
	if len(s.cfg.RedirectURIs) > 0 {
		return slices.Contains(s.cfg.RedirectURIs, uri)
	}
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func authorizePage(w http.ResponseWriter, code, description string) {
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "<html><head><title>Error</title></head><body><p>error=%s&amp;error_description=%s</p></body></html>\n",
		html.EscapeString(code), html.EscapeString(description))
}

// normalizeScope collapses the requested scope list. Without one, the grant gets the app's
// configured scopes, modelled as "api refresh_token".
func normalizeScope(scope string) string {
	fields := strings.Fields(scope)
	if len(fields) == 0 {
		return "api refresh_token"
	}
	return strings.Join(fields, " ")
}

func scopeAllowsRefresh(scope string) bool {
	for _, f := range strings.Fields(scope) {
		if f == "refresh_token" || f == "offline_access" {
			return true
		}
	}
	return false
}

// oauthError is the token endpoint's error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{code, description})
}

func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed request body")
		return
	}
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		clientID, secret = id, sec
	}
	grantType := r.PostForm.Get("grant_type")
	switch {
	case grantType == "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant type is missing")
		return
	case grantType != "authorization_code" && grantType != "refresh_token":
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	case clientID != s.cfg.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1:
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		resp TokenResponse
		oerr *oauthError
	)
	if grantType == "authorization_code" {
		resp, oerr = s.exchangeCode(r.PostForm)
	} else {
		resp, oerr = s.refreshGrant(r.PostForm.Get("refresh_token"))
	}
	if oerr != nil {
		if oerr.Error == "invalid_grant" {
			s.auth.stats.InvalidGrants++
		}
		writeOAuthError(w, http.StatusBadRequest, oerr.Error, oerr.Description)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// exchangeCode redeems an authorization code; the caller holds s.mu.
func (s *Sim) exchangeCode(form url.Values) (TokenResponse, *oauthError) {
	code := s.auth.codes[form.Get("code")]
	// A code is single-use whatever the outcome, so a failed attempt cannot be retried.
	delete(s.auth.codes, form.Get("code"))
	verifier := form.Get("code_verifier")
	switch {
	case code == nil:
		// UNCONFIRMED wording.
		return TokenResponse{}, &oauthError{"invalid_grant", "invalid authorization code"}
	case s.cfg.Now().After(code.expires):
		return TokenResponse{}, &oauthError{"invalid_grant", "authorization code expired"}
	case form.Get("redirect_uri") != code.redirectURI:
		// RFC 6749 §5.2 makes a redirect_uri mismatch invalid_grant; wording UNCONFIRMED.
		return TokenResponse{}, &oauthError{"invalid_grant", "redirect_uri mismatch"}
	case code.challenge != "" && verifier == "":
		return TokenResponse{}, &oauthError{"invalid_grant", "invalid code verifier"}
	case code.challenge != "" && s256(verifier) != code.challenge:
		return TokenResponse{}, &oauthError{"invalid_request", "invalid code verifier"}
	}
	// A verifier without a challenge is ignored (UNCONFIRMED), as jsforce with useVerifier
	// also sends one on refresh.
	return s.issueGrant(code.scope), nil
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// issueGrant starts a new grant, displacing the oldest beyond the per-user limit; the caller
// holds s.mu.
func (s *Sim) issueGrant(scope string) TokenResponse {
	if len(s.auth.grants) >= maxGrantsPerUser {
		s.revokeGrant(s.auth.grants[0])
	}
	g := &grant{scope: scope, used: s.cfg.Now()}
	s.auth.grants = append(s.auth.grants, g)
	s.auth.stats.Grants++
	resp := s.issueAccess(g)
	if scopeAllowsRefresh(scope) {
		g.refresh = "5Aep" + randomToken(32)
		s.auth.refresh[g.refresh] = g
		resp.RefreshToken = g.refresh
	}
	return resp
}

// refreshGrant runs the refresh_token grant with rotation; the caller holds s.mu.
func (s *Sim) refreshGrant(token string) (TokenResponse, *oauthError) {
	expired := &oauthError{"invalid_grant", "expired access/refresh token"}
	if g := s.auth.stale[token]; g != nil {
		// Reuse of a rotated-out token revokes the whole grant: its current refresh token
		// and every access token issued under it.
		s.auth.stats.ReuseDetected++
		s.revokeGrant(g)
		return TokenResponse{}, expired
	}
	g := s.auth.refresh[token]
	if g == nil || g.revoked {
		return TokenResponse{}, expired
	}
	if s.cfg.RefreshIdle > 0 && s.cfg.Now().Sub(g.used) > s.cfg.RefreshIdle {
		// An idle refresh token expires: the platform answers as for any expired token
		// (reference/salesforce.md §1.6, §8.9), and the grant is gone.
		s.revokeGrant(g)
		return TokenResponse{}, expired
	}
	g.used = s.cfg.Now()
	s.auth.stats.Refreshes++
	resp := s.issueAccess(g)
	if !s.cfg.DisableRotation {
		delete(s.auth.refresh, token)
		s.auth.stale[token] = g
		g.refresh = "5Aep" + randomToken(32)
		s.auth.refresh[g.refresh] = g
		resp.RefreshToken = g.refresh
		s.auth.stats.Rotations++
	}
	return resp, nil
}

// issueAccess mints an access token under a grant; the caller holds s.mu.
func (s *Sim) issueAccess(g *grant) TokenResponse {
	token := s.cfg.OrgID[:15] + "!AR" + randomToken(40)
	at := &accessToken{grant: g}
	if s.cfg.SessionTTL > 0 {
		at.expires = s.cfg.Now().Add(s.cfg.SessionTTL)
	}
	s.auth.access[token] = at
	id := s.loginURL + "/id/" + s.cfg.OrgID + "/" + s.cfg.UserID
	issuedAt := strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(s.cfg.ClientSecret))
	mac.Write([]byte(id + issuedAt))
	return TokenResponse{
		AccessToken: token,
		Signature:   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		Scope:       g.scope,
		InstanceURL: s.instanceURL,
		ID:          id,
		TokenType:   "Bearer",
		IssuedAt:    issuedAt,
	}
}

// revokeGrant ends a grant and every token issued under it; the caller holds s.mu.
func (s *Sim) revokeGrant(g *grant) {
	if g.revoked {
		return
	}
	g.revoked = true
	delete(s.auth.refresh, g.refresh)
	for _, at := range s.auth.access {
		if at.grant == g {
			at.revoked = true
		}
	}
	s.auth.grants = slices.DeleteFunc(s.auth.grants, func(x *grant) bool { return x == g })
	s.auth.stats.RevokedGrants++
}

func (s *Sim) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed request body")
		return
	}
	token := r.Form.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if at := s.auth.access[token]; at != nil && !at.revoked {
		at.revoked = true // an access token alone: its grant lives on
		w.WriteHeader(http.StatusOK)
		return
	}
	if g := s.auth.refresh[token]; g != nil {
		s.revokeGrant(g)
		w.WriteHeader(http.StatusOK)
		return
	}
	writeOAuthError(w, http.StatusBadRequest, "invalid_token", "invalid token")
}

// validToken reports whether a bearer token may call the data API; the caller holds s.mu.
func (s *Sim) validToken(token string) bool {
	at := s.auth.access[token]
	return at != nil && !at.revoked && !at.grant.revoked && (at.expires.IsZero() || s.cfg.Now().Before(at.expires))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, prefix := range []string{"Bearer ", "OAuth "} { // Salesforce accepts both schemes
		if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
			return strings.TrimSpace(h[len(prefix):])
		}
	}
	return ""
}

func (s *Sim) handleIdentity(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := s.validToken(bearer(r))
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden) // UNCONFIRMED: the identity service answers 403 "Bad_OAuth_Token"
		fmt.Fprint(w, "Bad_OAuth_Token")
		return
	}
	if r.PathValue("org") != s.cfg.OrgID || r.PathValue("user") != s.cfg.UserID {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "Bad_Id")
		return
	}
	rest := s.InstanceURL() + "/services/data/v{version}/"
	writeJSON(w, http.StatusOK, map[string]any{
		"id":              s.LoginURL() + "/id/" + s.cfg.OrgID + "/" + s.cfg.UserID,
		"user_id":         s.cfg.UserID,
		"organization_id": s.cfg.OrgID,
		"username":        s.cfg.Username,
		"display_name":    "Integration User",
		"email":           s.cfg.Username,
		"active":          true,
		"user_type":       "STANDARD",
		"urls": map[string]string{
			"rest":     rest,
			"sobjects": rest + "sobjects/",
			"query":    rest + "query/",
			"limits":   rest + "limits/",
		},
	})
}

// MintTokens grants tokens as a completed browser flow would, for tests that start
// already connected.
func (s *Sim) MintTokens(scope string) TokenResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueGrant(normalizeScope(scope))
}

// RevokeAll revokes every grant, as deactivating the integration user would.
func (s *Sim) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.auth.grants) > 0 {
		s.revokeGrant(s.auth.grants[0])
	}
}

// ExpireSessions ends every access token's session; refresh tokens stay valid.
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Unix(1, 0)
	for _, at := range s.auth.access {
		at.expires = past
	}
}

// AuthStats reports what the login host has done so far.
func (s *Sim) AuthStats() AuthStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth.stats
}
