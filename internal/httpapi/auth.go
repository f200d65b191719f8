package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Challenges sent with a 401. Browser routes ask for Basic so the browser shows its login
// prompt; API routes ask for Bearer, which no browser prompts for.
const (
	bearerChallenge = `Bearer realm="backfill"`
	basicChallenge  = `Basic realm="backfill", charset="UTF-8"`
)

// requireToken lets a request through only with the API token, as a Bearer token or as the
// password of HTTP Basic.
func (s *Server) requireToken(challenge string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		presented, ok := credential(r)
		if ok && s.tokenMatches(presented) {
			next.ServeHTTP(w, r)
			return
		}
		msg := "this route needs the API token: send Authorization: Bearer <BACKFILL_API_TOKEN>, or HTTP Basic with the token as the password"
		if ok {
			msg = "the API token is wrong"
		}
		w.Header().Set("WWW-Authenticate", challenge)
		s.fail(w, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: msg})
	})
}

// credential returns what the request presents as the token.
func credential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if scheme, token, found := strings.Cut(h, " "); found && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(token)
		return token, token != ""
	}
	if _, password, found := r.BasicAuth(); found {
		return password, true
	}
	return "", false
}

// tokenMatches compares hashes in constant time, so neither the token's content nor its
// length leaks through timing.
func (s *Server) tokenMatches(presented string) bool {
	sum := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1
}
