package salesforce

import (
	"context"
	"fmt"
)

// StaticTokens is a TokenSource for a token obtained elsewhere (a CLI flag, a test). It cannot
// refresh: once Salesforce rejects the token, Refresh fails with ErrAuth.
func StaticTokens(c Credentials) TokenSource {
	return staticTokens{c}
}

type staticTokens struct{ creds Credentials }

func (s staticTokens) Token(context.Context) (Credentials, error) { return s.creds, nil }

func (s staticTokens) Refresh(context.Context, Credentials) (Credentials, error) {
	return Credentials{}, fmt.Errorf("%w: a static access token cannot be refreshed", ErrAuth)
}
