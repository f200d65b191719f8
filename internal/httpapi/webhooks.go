package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/sjbackfill/backfill/internal/webhooks"
)

// Webhooks installs, inspects and removes the Skilljar subscriptions; *webhooks.Manager is
// one.
type Webhooks interface {
	Install(ctx context.Context) (webhooks.Status, error)
	Status(ctx context.Context) (webhooks.Status, error)
	Remove(ctx context.Context) (webhooks.Status, error)
}

// getWebhooks, installWebhooks and removeWebhooks serve /v1/webhooks: GET reports our
// subscriptions, POST creates or updates them and pings them, DELETE removes them.
func (s *Server) getWebhooks(w http.ResponseWriter, r *http.Request) error {
	return s.webhooks(w, r, Webhooks.Status)
}

func (s *Server) installWebhooks(w http.ResponseWriter, r *http.Request) error {
	return s.webhooks(w, r, Webhooks.Install)
}

func (s *Server) removeWebhooks(w http.ResponseWriter, r *http.Request) error {
	return s.webhooks(w, r, Webhooks.Remove)
}

func (s *Server) webhooks(w http.ResponseWriter, r *http.Request, op func(Webhooks, context.Context) (webhooks.Status, error)) error {
	if s.d.Webhooks == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotConfigured,
			Message: "this server manages no Skilljar webhooks; set SKILLJAR_API_KEY and BACKFILL_SECRET_KEY"}
	}
	st, err := op(s.d.Webhooks, r.Context())
	if errors.Is(err, webhooks.ErrNoTarget) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotConfigured, Message: err.Error()}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
