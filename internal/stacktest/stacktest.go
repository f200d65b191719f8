// Package stacktest builds the engine's test stack: a private redis-server, both simulators
// over real HTTP, the real clients to them, the run and connection stores, the queue client
// and the engine, each stopped when the test ends.
package stacktest

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/ratelimit"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/simclient"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/worker"
)

// Options shape one stack; the zero value is the simulators' defaults and a silent log.
type Options struct {
	Skilljar   skilljarsim.Config
	Salesforce salesforcesim.Config
	Pipeline   pipeline.Config
	// RateLimit, when set, paces the Skilljar client through the Redis-shared limiter
	// ("600/1m"), as the workers of one deployment share it.
	RateLimit string
	// WrapSink lets a test put itself between the engine and Salesforce.
	WrapSink func(pipeline.Sink) pipeline.Sink
	// SinkConfig, when set, changes the Salesforce client's configuration before it is
	// built (DisableAdaptation, to compare the engine with and without its handling).
	SinkConfig func(*salesforce.Config)
	// Log receives the engine's JSON log lines. Without it they are dropped, unless TEST_LOG
	// is set: then they are printed.
	Log io.Writer
	// Now is the run store's clock; time.Now when nil.
	Now func() time.Time
	// Redis starts the stack's own redis-server with these options (AOF, for tests that
	// restart it).
	Redis redistest.Options
	// External, when set, is a Redis deployment the test started itself (a primary, a
	// replica and sentinels): the stack runs on it and starts no server.
	External *ExternalRedis
}

// ExternalRedis is a Redis deployment a test started: how a role reaches it (REDIS_URL), a
// client for the stores and asynq's options for the queues.
type ExternalRedis struct {
	URL    string
	Client *redis.Client
	Conn   asynq.RedisConnOpt
}

// Stack is one running set of parts.
type Stack struct {
	Ctx context.Context
	// Redis is the stack's own redis-server; nil on an External deployment.
	Redis *redistest.Server
	// RedisURL, RDB and RedisConn reach Redis as a role, the stores and asynq do.
	RedisURL   string
	RDB        *redis.Client
	RedisConn  asynq.RedisConnOpt
	Skilljar   *skilljarsim.Sim
	Salesforce *salesforcesim.Sim
	// Source is the engine's Skilljar client; Sink is its Salesforce client, also the
	// Contacts client, for tests that set the org up.
	Source *skilljar.Client
	Sink   *salesforce.Client
	Store  *runstore.Store
	// Connection keeps the Salesforce grant, sealed with SecretKey.
	Connection *connection.Store
	SecretKey  []byte
	Queue      *asynq.Client
	Engine     *pipeline.Engine
	Logger     zerolog.Logger
}

// Start builds the stack for t.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{Ctx: context.Background(), Logger: logger(o.Log)}
	if e := o.External; e != nil {
		s.RedisURL, s.RDB, s.RedisConn = e.URL, e.Client, e.Conn
	} else {
		s.Redis = redistest.StartWith(t, o.Redis)
		s.RedisURL, s.RDB, s.RedisConn = s.Redis.URL(), s.Redis.Client(t), asynq.RedisClientOpt{Addr: s.Redis.Addr}
	}
	var err error
	if s.Skilljar, err = skilljarsim.Start(o.Skilljar, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Skilljar.Close() })
	if s.Salesforce, err = salesforcesim.Start(o.Salesforce, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Salesforce.Close() })

	var limiter skilljar.Limiter
	if o.RateLimit != "" {
		limits, err := ratelimit.ParseLimits(o.RateLimit)
		if err != nil {
			t.Fatal(err)
		}
		limiter = ratelimit.New(s.RDB, "skilljar", limits)
	}
	if s.Source, err = simclient.Skilljar(s.Skilljar, limiter); err != nil {
		t.Fatal(err)
	}
	var tune []func(*salesforce.Config)
	if o.SinkConfig != nil {
		tune = append(tune, o.SinkConfig)
	}
	if s.Sink, err = simclient.Salesforce(s.Salesforce, tune...); err != nil {
		t.Fatal(err)
	}
	var sink pipeline.Sink = s.Sink
	if o.WrapSink != nil {
		sink = o.WrapSink(sink)
	}
	s.Store = runstore.New(s.RDB, runstore.Options{Now: o.Now})
	s.SecretKey = make([]byte, 32)
	_, _ = rand.Read(s.SecretKey) // crypto/rand.Read never fails
	if s.Connection, err = connection.NewStore(s.RDB, s.SecretKey, ""); err != nil {
		t.Fatal(err)
	}
	s.Queue = asynq.NewClient(s.RedisConn)
	t.Cleanup(func() { _ = s.Queue.Close() })
	if s.Engine, err = pipeline.New(o.Pipeline, pipeline.Deps{
		Store: s.Store, Source: s.Source, Sink: sink, Contacts: s.Sink, Enqueuer: s.Queue, Logger: s.Logger,
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func logger(w io.Writer) zerolog.Logger {
	switch {
	case w != nil:
		return zerolog.New(w)
	case os.Getenv("TEST_LOG") != "":
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// StartWorker runs an in-process worker on the stack until stop is called or the test ends;
// stop shuts it down gracefully and waits for it.
func (s *Stack) StartWorker(t testing.TB) (stop func()) {
	t.Helper()
	srv := worker.NewServer(s.RedisConn,
		worker.Config{Concurrency: 2, ShutdownTimeout: 20 * time.Second, PollInterval: 50 * time.Millisecond}, s.Logger)
	worker.Register(srv.Mux(), worker.Deps{Slices: s.Engine, Stop: srv.Stopping(), Logger: s.Logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// ConnectSalesforce stores a grant of the simulated org the way the OAuth callback stores
// one, so the production roles find Salesforce connected.
func (s *Stack) ConnectSalesforce(t testing.TB) {
	t.Helper()
	tok := s.Salesforce.MintTokens("api refresh_token")
	if err := s.Connection.Connect(s.Ctx, connection.Grant{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, InstanceURL: tok.InstanceURL,
		IdentityURL: tok.ID, LoginURL: s.Salesforce.LoginURL(), IssuedAt: time.Now(),
	}, connection.Status{}); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls the run until cond holds, failing the test after timeout with what did not
// happen and the run's latest events.
func (s *Stack) WaitFor(t testing.TB, id string, timeout time.Duration, what string, cond func(*runstore.Run) bool) *runstore.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		run, err := s.Store.Get(s.Ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			events, _ := s.Store.Events(s.Ctx, id, 10)
			t.Fatalf("run %s: %s did not happen within %s: state %s progress %+v events %+v", id, what, timeout, run.State, run.Progress, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RequireExactData fails the test unless Salesforce holds exactly the source's records of
// the domains (all when none), field by field.
func (s *Stack) RequireExactData(t testing.TB, domains ...string) {
	t.Helper()
	if rep := simcheck.Compare(s.Skilljar.Org(), s.Salesforce, domains...); !rep.Exact() {
		t.Fatalf("Salesforce differs from the source:\n%s", rep)
	}
}
