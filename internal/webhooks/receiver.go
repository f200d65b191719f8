package webhooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/rs/zerolog"
)

// Delivery is what the receiver reads from a body it does not trust: at most a learner to
// look up through the API. Nothing else in it is used.
type Delivery struct {
	// Learner is "id:<id>" or "email:<address>", or "" when the body names no learner.
	Learner string
	Ping    bool
}

// The document gives no delivery schema (the sample operations return `type: object`), so a
// learner is looked for where events of this kind usually carry one, and checked against the
// v1 id pattern (^[0-9a-z]+$) or a plain address shape before it is queued.
var (
	idPaths    = [][]string{{"user", "id"}, {"user_id"}, {"student", "id"}, {"learner", "id"}}
	emailPaths = [][]string{{"user", "email"}, {"email"}, {"student", "email"}, {"learner", "email"}}
	idPattern  = regexp.MustCompile(`^[0-9a-z]{1,64}$`)
	emailShape = regexp.MustCompile(`^[^\s@<>"]{1,64}@[^\s@<>"]{1,190}$`)
)

// Read extracts the learner from a delivery body; a body that is not a JSON object or names
// no valid learner is a Delivery without one.
func Read(body []byte) Delivery {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return Delivery{}
	}
	if t, _ := doc["type"].(string); t == "PING" {
		return Delivery{Ping: true}
	}
	if id := lookup(doc, idPaths); idPattern.MatchString(id) {
		return Delivery{Learner: "id:" + id}
	}
	if email := lookup(doc, emailPaths); emailShape.MatchString(email) {
		return Delivery{Learner: "email:" + strings.ToLower(email)}
	}
	return Delivery{}
}

func lookup(doc map[string]any, paths [][]string) string {
	for _, p := range paths {
		var v any = doc
		for _, k := range p {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// ReceiverConfig tunes the receiver.
type ReceiverConfig struct {
	// MaxBody bounds a delivery; a larger one gets 413. Defaults to 64 KiB.
	MaxBody int64
	// Queued is called after a delivery naming a learner was stored, to schedule the drain;
	// the delivery is safe in Redis whether or not that succeeds.
	Queued func(ctx context.Context) error
	Logger zerolog.Logger
}

// Receiver serves POST /webhooks/skilljar.
type Receiver struct {
	store *Store
	cfg   ReceiverConfig
}

// NewReceiver returns the receiver.
func NewReceiver(store *Store, cfg ReceiverConfig) *Receiver {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	return &Receiver{store: store, cfg: cfg}
}

// ServeHTTP authenticates, bounds, stores and only then answers 200. A 4xx makes Skilljar
// deactivate the subscription, so only what is certainly not a delivery of ours gets one;
// a storage failure answers 503 so that Skilljar retries.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	creds, err := rc.store.Credentials(r.Context())
	switch {
	case errors.Is(err, ErrNoCredentials):
		http.Error(w, "webhooks are not installed", http.StatusUnauthorized)
		return
	case err != nil:
		rc.cfg.Logger.Error().Err(err).Msg("webhook delivery: cannot read the credentials")
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || !equal(user, creds.Username) || !equal(pass, creds.Password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="webhooks"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, "delivery too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "could not read the delivery", http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	d := Read(body)
	outcome, err := rc.store.Accept(r.Context(), hex.EncodeToString(sum[:]), d, body)
	if err != nil {
		rc.cfg.Logger.Error().Err(err).Msg("webhook delivery not stored; Skilljar will retry it")
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if outcome == Queued && rc.cfg.Queued != nil {
		if err := rc.cfg.Queued(r.Context()); err != nil {
			rc.cfg.Logger.Warn().Err(err).Msg("webhook delivery stored, but its drain could not be scheduled; the next delivery or tick schedules it")
		}
	}
	if outcome == Unknown {
		rc.cfg.Logger.Warn().Int("bytes", len(body)).Msg("webhook delivery names no learner; kept and counted")
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"outcome":"`+outcome+`"}`)
}

// equal compares in constant time: hashing first makes the time independent of the lengths.
func equal(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && want != ""
}
