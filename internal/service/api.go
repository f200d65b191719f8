package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/doctor"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/monitoring"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/webui"
)

// API is the HTTP side: the JSON API, the OAuth connect flow and the mounted operator pages.
type API struct {
	Handler    http.Handler
	Settings   *settings.Store
	Authorizer *connection.Authorizer
	monitoring *monitoring.Handler
}

// Close releases the asynq UI's Redis connections.
func (a *API) Close() { _ = a.monitoring.Close() }

// NewAPI builds the HTTP handler of the api role.
func NewAPI(p *Parts) (*API, error) {
	if p.Connection == nil {
		return nil, &config.Error{Var: "BACKFILL_SECRET_KEY", Expect: "is required for the api role"}
	}
	st := p.Settings()
	auth := connection.NewAuthorizer(p.Connection, connection.OAuthConfig{
		ClientID: p.Config.SalesforceClientID, ClientSecret: p.Config.SalesforceClientSecret,
		RedirectURL: p.Config.SalesforceRedirectURL, Environment: p.Config.SalesforceEnvironment,
		LoginURL: p.Config.SalesforceLoginURL, Logger: p.Log,
		// The settings page's Sandbox/Production choice wins over the start-up default.
		EnvironmentFor: func(ctx context.Context) (string, string) {
			s, err := st.Get(ctx)
			if err != nil || s.Environment == "" {
				return "", ""
			}
			login, err := config.LoginURL(s.Environment, p.Config.SalesforceLoginOrigins)
			if err != nil {
				return "", ""
			}
			return s.Environment, login
		},
	})
	auth.OnConnected(func(ctx context.Context) {
		n, err := p.Engine.ResumeWaitingForAuth(context.WithoutCancel(ctx))
		if err != nil {
			p.Log.Error().Err(err).Msg("could not resume runs waiting for Salesforce authentication")
			return
		}
		if n > 0 {
			p.Log.Info().Int("runs", n).Msg("resumed runs that were waiting for Salesforce authentication")
		}
	})
	var domains webui.DomainLister
	if p.Skilljar != nil { // a nil client must not become a non-nil interface
		domains = p.Skilljar
	}
	// Every start, from the API or the page, first asks the doctor.
	doc := &doctor.Doctor{Connection: auth, Mapping: p.Engine.Mapping, IdleLimit: p.Config.SalesforceIdleLimit}
	if p.Skilljar != nil { // a nil client must not become a non-nil interface
		doc.Skilljar = p.Skilljar
	}
	if p.Salesforce != nil {
		doc.Salesforce = p.Salesforce
	}
	runs := doctor.Gated{Engine: p.Engine, Doctor: doc}
	page, err := webui.New(webui.Config{IdleLimit: p.Config.SalesforceIdleLimit}, webui.Deps{
		Runs: runs, Ledger: p.Store, Settings: st, Domains: domains, Connection: auth, Doctor: doc, Logger: p.Log,
		Webhooks: p.Webhooks,
	})
	if err != nil {
		return nil, err
	}
	mon, err := monitoring.New(monitoring.Config{
		Redis: p.RedisOpt, ReadOnly: p.Config.MonitoringReadOnly, PrometheusURL: p.Config.PrometheusURL,
	}, p.Store)
	if err != nil {
		return nil, err
	}
	h, err := httpapi.New(httpapi.Config{Token: p.Config.APIToken}, httpapi.Deps{
		Runs: runs, Ledger: p.Store, Settings: st, Redis: p.Redis, Connection: auth, Doctor: doc,
		Logger: p.Log, OAuth: auth.Handler(), Page: page, Monitoring: mon, Metrics: p.Metrics.Handler(),
		Webhooks: p.webhookAdmin(), WebhookReceiver: p.webhookReceiver(),
	})
	if err != nil {
		_ = mon.Close()
		return nil, err
	}
	return &API{Handler: h, Settings: st, Authorizer: auth, monitoring: mon}, nil
}

// shutdownGrace is how long in-flight requests get after SIGTERM.
const shutdownGrace = 10 * time.Second

// Serve serves h on ln until ctx ends, then drains in-flight requests and returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	srv := httpapi.DefaultLimits.Server(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(httpapi.DefaultLimits.Listener(ln)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("http server stopping: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down HTTP: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info().Msg("http server stopped")
	return nil
}

// RunAPI serves the api role on BACKFILL_HTTP_ADDR until ctx ends.
func RunAPI(ctx context.Context, p *Parts) error {
	if err := CheckRedis(ctx, p.Redis, p.Log); err != nil {
		return err
	}
	api, err := NewAPI(p)
	if err != nil {
		return err
	}
	defer api.Close()
	ln, err := net.Listen("tcp", p.Config.HTTPAddr)
	if err != nil {
		return &config.Error{Var: "BACKFILL_HTTP_ADDR", Expect: fmt.Sprintf("cannot listen on %q: %v", p.Config.HTTPAddr, err)}
	}
	go p.watchWebhooks(ctx)
	go p.sweepWebhooks(ctx)
	p.Log.Info().Str("addr", ln.Addr().String()).Msg("api listening")
	return Serve(ctx, ln, api.Handler, p.Log)
}
