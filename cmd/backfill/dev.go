package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/service"
	"github.com/sjbackfill/backfill/worker"
)

// devOptions shape the all-in-one process.
type devOptions struct {
	sim  simFlags
	addr string
	// rateLimit paces the engine's Skilljar calls ("count/period,...").
	rateLimit string
	logLevel  string
}

// register defines the flags with d's values as their defaults.
func (o *devOptions) register(fs *pflag.FlagSet, d devOptions, addrDoc string) {
	o.sim.register(fs, d.sim)
	fs.StringVar(&o.addr, "addr", d.addr, addrDoc)
	fs.StringVar(&o.rateLimit, "skilljar-rate-limit", d.rateLimit, "the engine's shared Skilljar budget (default: the simulator's limits)")
	fs.StringVar(&o.logLevel, "log-level", d.logLevel, "debug, info, warn or error")
}

// devStack is every role in one process: the embedded Redis (unless REDIS_URL is given),
// the simulators (unless real credentials are given), the API, a worker and the scheduler.
type devStack struct {
	cfg     config.Config
	parts   *service.Parts
	api     *service.API
	sims    *sims
	mini    *miniredis.Miniredis
	baseURL string
	stderr  io.Writer

	cancel   context.CancelFunc
	stopTick func()
	closers  []func()
	wg       sync.WaitGroup
	errs     chan error
}

// startDev starts the stack; env is os.Getenv (tests pass their own).
func startDev(ctx context.Context, o devOptions, getenv func(string) string, stderr io.Writer) (*devStack, error) {
	d := &devStack{stderr: stderr, errs: make(chan error, 4)}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	env := map[string]string{}
	for _, v := range config.Vars {
		if val := getenv(v.Name); val != "" {
			env[v.Name] = val
		}
	}
	if env["REDIS_URL"] == "" {
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("start the embedded Redis: %w", err)
		}
		d.mini = m
		env["REDIS_URL"] = "redis://" + m.Addr()
		d.tickMiniredis()
	}
	realSkilljar, realSalesforce := env["SKILLJAR_API_KEY"] != "", env["SALESFORCE_CLIENT_ID"] != ""
	if !realSkilljar || !realSalesforce {
		s, err := startSims(&o.sim)
		if err != nil {
			return nil, err
		}
		d.sims = s
	}
	if !realSkilljar {
		env["SKILLJAR_BASE_URL"], env["SKILLJAR_API_KEY"] = d.sims.sj.URL(), d.sims.sj.APIKey()
		if o.rateLimit == "" {
			o.rateLimit = simRateLimit(o.sim)
		}
	}
	if o.rateLimit != "" {
		env["SKILLJAR_RATE_LIMIT"] = o.rateLimit
	}
	if !realSalesforce {
		env["SALESFORCE_CLIENT_ID"], env["SALESFORCE_CLIENT_SECRET"] = d.sims.sf.ClientID(), d.sims.sf.ClientSecret()
		env["SALESFORCE_ENVIRONMENT"] = d.sims.sf.LoginURL()
		env["SALESFORCE_LOGIN_ORIGINS"] = d.sims.sf.LoginURL()
	}
	if env["BACKFILL_API_TOKEN"] == "" {
		env["BACKFILL_API_TOKEN"] = randomHex(24)
	}
	generatedKey := env["BACKFILL_SECRET_KEY"] == ""
	if generatedKey {
		env["BACKFILL_SECRET_KEY"] = randomHex(32)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("--addr: cannot listen on %s: %w", o.addr, err)
	}
	d.baseURL = "http://" + ln.Addr().String()
	if env["SALESFORCE_REDIRECT_URL"] == "" || !realSalesforce {
		env["SALESFORCE_REDIRECT_URL"] = d.baseURL + "/salesforce/callback"
	}
	env["LOG_LEVEL"] = o.logLevel
	cfg, err := config.Load(config.RoleAPI, func(k string) string { return env[k] })
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	cfg.WorkerConcurrency = 4
	d.cfg = cfg
	log, err := logging.New(stderr, cfg.LogLevel)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	redis.SetLogger(logging.Redis{L: log})
	if d.mini != nil {
		log.Warn().Msg("using the embedded Redis: nothing survives this process; set REDIS_URL for a durable one")
	}
	if generatedKey {
		log.Warn().Msg("BACKFILL_SECRET_KEY was generated for this process: stored Salesforce tokens cannot be read after a restart")
	}
	if d.parts, err = service.Build(cfg, log); err != nil {
		_ = ln.Close()
		return nil, err
	}
	if d.api, err = service.NewAPI(d.parts); err != nil {
		_ = ln.Close()
		return nil, err
	}
	d.closers = append(d.closers, d.api.Close)
	runCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.run("api", func() error { return service.Serve(runCtx, ln, d.api.Handler, log.With().Str("role", "api").Logger()) })
	d.run("worker", func() error { return d.runWorker(runCtx, log.With().Str("role", "worker").Logger()) })
	d.run("scheduler", func() error {
		return service.RunScheduler(runCtx, d.parts.RedisOpt, cfg.CatchupCron, log.With().Str("role", "scheduler").Logger())
	})
	ok = true
	return d, nil
}

// simRateLimit makes the engine's budget the simulator's, so a dev run paces itself like a
// production one instead of running into 429s.
func simRateLimit(f simFlags) string {
	var limits []string
	if f.perMinute > 0 {
		limits = append(limits, fmt.Sprintf("%d/1m", f.perMinute))
	}
	if f.perHour > 0 {
		limits = append(limits, fmt.Sprintf("%d/1h", f.perHour))
	}
	if len(limits) == 0 {
		return "1000000/1s"
	}
	return strings.Join(limits, ",")
}

// runWorker is the worker role with a short poll interval, so slices follow each other
// without the production one-second pause.
func (d *devStack) runWorker(ctx context.Context, log zerolog.Logger) error {
	srv := worker.NewServer(d.parts.RedisOpt, worker.Config{Concurrency: d.cfg.WorkerConcurrency, PollInterval: 100 * time.Millisecond}, log)
	worker.Register(srv.Mux(), d.parts.WorkerDeps(srv))
	return srv.Run(ctx)
}

func (d *devStack) run(role string, fn func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := fn(); err != nil {
			d.errs <- fmt.Errorf("%s: %w", role, err)
		}
	}()
}

// tickMiniredis expires the embedded Redis's keys with the wall clock: miniredis only
// counts TTLs (leases, locks, OAuth states) down when told time has passed.
func (d *devStack) tickMiniredis() {
	m := d.mini
	done := make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				// Only TTLs need telling: TIME and EXPIREAT already follow the wall clock
				// (a set time would freeze TIME between ticks and stall the rate limiter).
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	d.stopTick = func() { close(done) }
}

// printURLs tells the newcomer where everything is.
func (d *devStack) printURLs(w io.Writer) {
	token := d.cfg.APIToken
	fmt.Fprintf(w, `
  Settings & Backfill page  %[1]s/            (any user name, password: the API token)
  asynq web UI              %[1]s/monitoring/
  API                       %[1]s/v1/backfills  (Authorization: Bearer <token>)
  API reference             %[1]s/v1/docs
  API token                 %[2]s
  CLI                       export BACKFILL_URL=%[1]s BACKFILL_API_TOKEN=%[2]s
`, d.baseURL, token)
	if d.sims != nil {
		fmt.Fprintf(w, "  Skilljar simulator        %s\n  Salesforce simulator      login %s, instance %s\n",
			d.sims.sj.URL(), d.sims.sf.LoginURL(), d.sims.sf.InstanceURL())
	}
	if d.mini != nil {
		fmt.Fprintf(w, "  Redis                     embedded at %s (not durable)\n", d.mini.Addr())
	}
}

// wait blocks until ctx ends or a role fails.
func (d *devStack) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.errs:
		return err
	}
}

func (d *devStack) close() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.stopTick != nil {
		d.stopTick()
	}
	d.wg.Wait()
	for _, c := range d.closers {
		c()
	}
	if d.parts != nil {
		d.parts.Close()
	}
	if d.sims != nil {
		d.sims.Close()
	}
	if d.mini != nil {
		d.mini.Close()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func devCommand() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "every role in one process on an embedded Redis and both simulators",
		Long: `backfill dev: the api, a worker and the scheduler in one process, on an embedded Redis
(unless REDIS_URL is set) and both simulators (unless SKILLJAR_API_KEY or
SALESFORCE_CLIENT_ID name real ones). The other variables of backfill help apply too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr := os.Getenv("BACKFILL_HTTP_ADDR"); addr != "" && !cmd.Flags().Changed("addr") {
				o.addr = addr
			}
			return status(runDev(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	o.register(cmd.Flags(), devOptions{sim: defaultSimFlags(), addr: "127.0.0.1:8080", logLevel: "info"},
		"address of the API, the page and /monitoring (BACKFILL_HTTP_ADDR when set)")
	return cmd
}

func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer) int {
	d, err := startDev(ctx, o, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "backfill dev: %v\n", err)
		return exitFailure
	}
	defer d.close()
	fmt.Fprintln(stdout, "backfill dev: every role in one process. Press Ctrl-C to stop.")
	d.printURLs(stdout)
	if err := d.wait(ctx); err != nil {
		fmt.Fprintf(stderr, "backfill dev: %v\n", err)
		return exitFailure
	}
	return exitOK
}
