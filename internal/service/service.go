// Package service assembles the backfill's production roles (api, worker, scheduler) from a
// validated configuration.
package service

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/metrics"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/rediskey"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/settings"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/internal/webhooks"
	"github.com/sjbackfill/backfill/worker"
)

// EventSinkAdapted is the connection event of a change the Salesforce client made to how it
// writes to the org (salesforce.Adaptation).
const EventSinkAdapted = "sink_adapted"

// Parts are the shared pieces every role is built from.
type Parts struct {
	Config     config.Config
	Log        zerolog.Logger
	RedisOpt   asynq.RedisConnOpt
	Redis      redis.UniversalClient
	Store      *runstore.Store
	Connection *connection.Store
	Tokens     *connection.Source
	Skilljar   *skilljar.Client
	Salesforce *salesforce.Client
	Queue      *asynq.Client
	Engine     *pipeline.Engine
	// Metrics counts this process's Skilljar and Salesforce calls; the api role also
	// exports the queues and runs from Redis.
	Metrics *metrics.Metrics
	// Webhooks is the queue of learners webhook deliveries named; WebhookManager manages
	// the subscriptions, when a Skilljar key and the secret key are set (webhooks.go).
	Webhooks       *webhooks.Store
	WebhookManager *webhooks.Manager
	inspector      *asynq.Inspector
}

// Build connects to Redis and builds the clients and the engine.
func Build(cfg config.Config, log zerolog.Logger) (*Parts, error) {
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return nil, &config.Error{Var: "REDIS_URL", Expect: err.Error()}
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("REDIS_URL: unsupported connection type %T", opt.MakeRedisClient())
	}
	p := &Parts{Config: cfg, Log: log, RedisOpt: opt, Redis: rdb, Store: runstore.New(rdb, runstore.Options{Lease: cfg.RunLease})}
	mcfg := metrics.Config{Logger: log}
	if cfg.Role == config.RoleAPI {
		// Queues and runs live in the shared Redis: one role exports them, or every
		// process would report the same numbers.
		p.inspector = asynq.NewInspector(opt)
		mcfg.Queues, mcfg.Runs = p.inspector, p.Store
	}
	p.Metrics = metrics.New(mcfg)
	m := mapping.Default()
	if cfg.MappingFile != "" {
		if m, err = mapping.Load(cfg.MappingFile); err != nil {
			return nil, &config.Error{Var: "BACKFILL_MAPPING_FILE", Expect: err.Error()}
		}
	}
	if len(cfg.SecretKey) > 0 {
		if p.Connection, err = connection.NewStore(rdb, cfg.SecretKey, ""); err != nil {
			return nil, err
		}
		p.Tokens = connection.NewSource(p.Connection, connection.SourceConfig{
			ClientID: cfg.SalesforceClientID, ClientSecret: cfg.SalesforceClientSecret, Logger: log,
			OnEvent: p.Connection.EventRecorder(log),
		})
		recordEvent := p.Connection.EventRecorder(log)
		if p.Salesforce, err = salesforce.New(salesforce.Config{
			APIVersion: cfg.SalesforceAPIVersion, Tokens: p.Tokens, Observer: p.Metrics.Sink(),
			// Every slice of this process may have a call in flight; the gate still lowers
			// itself when the org answers with its concurrent-request limit.
			MaxConcurrency: max(salesforce.DefaultMaxConcurrency, cfg.WorkerConcurrency),
			// What the client learns about the org (smaller calls, serial writes, fewer
			// requests in flight) lasts for the process and goes to the connection's log.
			OnAdapt: func(ctx context.Context, a salesforce.Adaptation) {
				log.Info().Str("adaptation", string(a.Kind)).Str("sobject", a.SObject).Msg(a.String())
				recordEvent(context.WithoutCancel(ctx), EventSinkAdapted, a.String())
			},
		}); err != nil {
			return nil, err
		}
	}
	if cfg.SkilljarAPIKey != "" {
		p.Skilljar, err = skilljar.New(skilljar.Config{
			BaseURL: cfg.SkilljarBaseURL, APIKey: cfg.SkilljarAPIKey,
			Limiter: ratelimit.New(rdb, rediskey.Prefix+"ratelimit:skilljar", cfg.SkilljarRateLimit,
				ratelimit.WithWindow(cfg.SkilljarRateWindow), ratelimit.WithMargin(cfg.SkilljarRateMargin)),
			Observer: p.Metrics.Source(),
			// The page and every run start ask for the domains; they rarely change.
			DomainsTTL: time.Minute,
		})
		if err != nil {
			return nil, err
		}
	}
	p.Queue = asynq.NewClient(opt)
	p.buildWebhooks(rdb)
	deps := pipeline.Deps{Store: p.Store, Mapping: m, Enqueuer: p.Queue, Logger: log,
		Live: p.Webhooks, LiveBudget: liveBudget(rdb, cfg)}
	if p.Salesforce != nil {
		deps.Contacts = p.Salesforce
	}
	if p.Skilljar != nil {
		deps.Source = p.Skilljar
	}
	if p.Salesforce != nil {
		deps.Sink = p.Salesforce
	}
	p.Engine, err = pipeline.New(pipeline.Config{SliceDuration: cfg.SliceDuration}, deps)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Close releases the connections.
func (p *Parts) Close() {
	if p.inspector != nil {
		_ = p.inspector.Close()
	}
	_ = p.Queue.Close()
	_ = p.Redis.Close()
}

// CheckRedis warns when Redis can lose what the engine relies on: with eviction on, asynq
// loses task leases and run state; without persistence a Redis restart loses every
// checkpoint.
func CheckRedis(ctx context.Context, rdb redis.UniversalClient, log zerolog.Logger) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("REDIS_URL: Redis does not answer: %w", err)
	}
	get := func(key string) string {
		v, err := rdb.ConfigGet(ctx, key).Result()
		if err != nil {
			return ""
		}
		return v[key]
	}
	if policy := get("maxmemory-policy"); policy != "" && policy != "noeviction" {
		log.Warn().Str("maxmemory_policy", policy).Msg("Redis evicts keys under memory pressure: asynq can lose task leases and runs their checkpoints; set maxmemory-policy noeviction")
	}
	aof, save := get("appendonly"), get("save")
	if aof == "no" && strings.TrimSpace(save) == "" {
		log.Warn().Msg("Redis keeps nothing on disk (appendonly no, no save points): a Redis restart loses every run and checkpoint; set appendonly yes")
	}
	return nil
}

// idleCheck is how often a worker looks whether the Salesforce grant has gone unused for
// SALESFORCE_IDLE_REFRESH: often enough that a restart or a missed look costs nothing.
const idleCheck = time.Hour

// RunWorker serves slices until ctx ends, then stops gracefully.
func RunWorker(ctx context.Context, p *Parts) error {
	if err := CheckRedis(ctx, p.Redis, p.Log); err != nil {
		return err
	}
	if p.Skilljar == nil || p.Salesforce == nil {
		return fmt.Errorf("worker: SKILLJAR_API_KEY and BACKFILL_SECRET_KEY are required")
	}
	// Every worker checks; the refresh lock and the stored last use make one of them refresh.
	keepCtx, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	go p.Tokens.KeepAlive(keepCtx, idleCheck, p.Config.SalesforceIdleRefresh)
	srv := worker.NewServer(p.RedisOpt, worker.Config{Concurrency: p.Config.WorkerConcurrency}, p.Log)
	worker.Register(srv.Mux(), p.WorkerDeps(srv))
	// Every worker sweeps for runs whose holder died, so a run goes on while any worker lives.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		worker.SweepLeases(sweepCtx, p.Engine, worker.LeaseSweepInterval, p.Log)
	}()
	defer func() { stopSweep(); <-swept }()
	p.Log.Info().Int("concurrency", p.Config.WorkerConcurrency).Msg("worker started")
	if p.Config.MetricsAddr == "" {
		return srv.Run(ctx)
	}
	// Workers make the Skilljar and Salesforce calls: their counters are served here.
	ln, err := net.Listen("tcp", p.Config.MetricsAddr)
	if err != nil {
		return &config.Error{Var: "BACKFILL_METRICS_ADDR", Expect: fmt.Sprintf("cannot listen on %q: %v", p.Config.MetricsAddr, err)}
	}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, p.Metrics.Handler(), p.Log) }()
	if err := srv.Run(ctx); err != nil {
		return err
	}
	return <-errc
}

// Settings is the settings store, checking domains against Skilljar when a key is set.
func (p *Parts) Settings() *settings.Store {
	cfg := settings.Config{Objects: pipeline.Objects(), LoginOrigins: p.Config.SalesforceLoginOrigins}
	if p.Skilljar != nil {
		cfg.Domains = p.Skilljar
	}
	return settings.New(p.Redis, cfg)
}

// WorkerDeps are the handlers' dependencies for a worker server.
func (p *Parts) WorkerDeps(srv *worker.Server) worker.Deps {
	return worker.Deps{
		Slices: p.Engine, Stop: srv.Stopping(), Logger: p.Log,
		Catchup:      worker.NewCatchupHandler(p.Engine, p.Settings(), p.Log),
		WebhookDrain: worker.NewWebhookDrainHandler(p.Engine, p.Settings(), p.Webhooks, p.Log),
	}
}
