package connection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/sjbackfill/backfill/internal/upstream"
)

// TokenError is a refusal from the login host's token endpoint. It carries the OAuth error
// code and description only: x/oauth2's own error quotes the response body, and a body is
// no place to take text from when it may hold tokens.
type TokenError struct {
	Status      int    // HTTP status
	Code        string // invalid_grant, invalid_client, invalid_request...; empty for a non-OAuth answer
	Description string
}

func (e *TokenError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("the Salesforce token endpoint answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("Salesforce refused the token request (%s: %s)", e.Code, e.Description)
}

// errTokenEndpoint means no answer came from the token endpoint.
var errTokenEndpoint = errors.New("the Salesforce token endpoint could not be reached")

// tokenError turns what x/oauth2 returns into an error fit for logs and pages, marked as
// Salesforce's failure.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		return &upstream.Error{Service: upstream.Salesforce, Err: te}
	}
	// Transport errors name the token URL, which carries no secret: they travel in the body.
	return &upstream.Error{Service: upstream.Salesforce, Err: fmt.Errorf("%w: %w", errTokenEndpoint, err)}
}

// oauthConfig is the x/oauth2 view of the connected app at a login host. Credentials go in
// the form body, which Salesforce documents for both grants; a Basic header would also do.
func oauthConfig(clientID, clientSecret, loginURL, redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		Scopes:       []string{"api", "refresh_token"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   loginURL + "/services/oauth2/authorize",
			TokenURL:  loginURL + "/services/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// withClient makes x/oauth2 send its requests through hc.
func withClient(ctx context.Context, hc *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

// merge lays a token response over the grant it refreshes (or an empty one). A refresh
// without rotation sends no refresh_token, and then the old one stays.
func merge(g Grant, tok *oauth2.Token) Grant {
	g.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		g.RefreshToken = tok.RefreshToken
	}
	if u, _ := tok.Extra("instance_url").(string); u != "" {
		g.InstanceURL = strings.TrimRight(u, "/")
	}
	if id, _ := tok.Extra("id").(string); id != "" {
		g.IdentityURL = id
	}
	if sc, _ := tok.Extra("scope").(string); sc != "" {
		g.Scope = sc
	}
	g.IssuedAt = time.Now().UTC()
	// issued_at is milliseconds since the epoch, as a string.
	if ms, err := strconv.ParseInt(fmt.Sprint(tok.Extra("issued_at")), 10, 64); err == nil && ms > 0 {
		g.IssuedAt = time.UnixMilli(ms).UTC()
	}
	return g
}

// revoke revokes a token at the login host; for a refresh token that ends its whole grant.
// A token Salesforce no longer knows (invalid_token) counts as revoked.
func revoke(ctx context.Context, hc *http.Client, loginURL, token string) error {
	form := url.Values{"token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, loginURL+"/services/oauth2/revoke", strings.NewReader(form))
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("revoke at %s: %w", loginURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "invalid_token"):
		return nil
	}
	return fmt.Errorf("revoke at %s: HTTP %d", loginURL, resp.StatusCode)
}
