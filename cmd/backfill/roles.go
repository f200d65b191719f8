package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/rediskey"
	"github.com/sjbackfill/backfill/internal/service"
)

// roleCommand is a production role: configured by the environment only, so its help lists
// the variables it reads.
func roleCommand(role, short string) *cobra.Command {
	return &cobra.Command{
		Use:   role,
		Short: short,
		Long:  "backfill " + role + ": " + short + ".\n\nEnvironment (a bad or missing variable stops it, with every problem listed):\n" + config.Help(role),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return status(runRole(cmd.Context(), role, cmd.ErrOrStderr()))
		},
	}
}

// runRole starts a production role from the environment; bad variables stop it with one
// line for each, naming the variable.
func runRole(ctx context.Context, role string, stderr io.Writer) int {
	cfg, err := config.Load(role, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: %v\n", role, err)
		return exitUsage
	}
	log, err := logging.New(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: %v\n", role, err)
		return exitUsage
	}
	log = log.With().Str("role", role).Logger()
	redis.SetLogger(logging.Redis{L: log})
	parts, err := service.Build(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: %v\n", role, err)
		return exitUsage
	}
	defer parts.Close()
	if role != config.RoleAPI {
		beatCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { heartbeat(beatCtx, parts.Redis, role, log); close(done) }()
		defer func() { stop(); <-done }()
	}
	switch role {
	case config.RoleWorker:
		err = service.RunWorker(ctx, parts)
	case config.RoleAPI:
		err = service.RunAPI(ctx, parts)
	case config.RoleScheduler:
		err = service.RunScheduler(ctx, parts.RedisOpt, cfg.CatchupCron, log)
	}
	if err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return exitFailure
	}
	return exitOK
}

// Heartbeats: a worker or scheduler has no HTTP port to probe, so it says it is alive in
// Redis, under its host name (a container's own), and `backfill healthcheck worker` reads
// that from inside the same container.
const (
	heartbeatEvery = 10 * time.Second
	heartbeatTTL   = 3 * heartbeatEvery
)

func heartbeatKey(role, host string) string { return rediskey.Prefix + "health:" + role + ":" + host }

// heartbeat refreshes the role's key until ctx ends; a Redis it cannot reach lets the key
// lapse, and the container turns unhealthy, which is the point.
func heartbeat(ctx context.Context, rdb redis.UniversalClient, role string, log zerolog.Logger) {
	host, err := os.Hostname()
	if err != nil {
		log.Warn().Err(err).Msg("no host name: healthcheck cannot find this process's heartbeat")
		return
	}
	key := heartbeatKey(role, host)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if err := rdb.Set(ctx, key, time.Now().UTC().Format(time.RFC3339), heartbeatTTL).Err(); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("could not write the heartbeat")
		}
		select {
		case <-ctx.Done():
			// A stopped process is not healthy: say so at once rather than after the TTL.
			_ = rdb.Del(context.WithoutCancel(ctx), key).Err()
			return
		case <-t.C:
		}
	}
}

func healthcheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "healthcheck [api|worker|scheduler]",
		Short: "exit 0 when this host's role is alive (for container healthchecks on images without curl)",
		Long: `backfill healthcheck: exit 0 when the role on this host is alive, 1 when it is not.

  api (the default)   GET /healthz of the api on BACKFILL_HTTP_ADDR
  worker, scheduler   their heartbeat in REDIS_URL, written every 10s under this host's name
                      (in a container, the container's own), gone 30s after the last one`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{config.RoleAPI, config.RoleWorker, config.RoleScheduler},
		RunE: func(cmd *cobra.Command, args []string) error {
			role := config.RoleAPI
			if len(args) == 1 {
				role = args[0]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			var err error
			switch role {
			case config.RoleAPI:
				err = apiAlive(ctx)
			case config.RoleWorker, config.RoleScheduler:
				err = heartbeatAlive(ctx, role)
			default:
				return fmt.Errorf("%q is not api, worker or scheduler", role)
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "backfill healthcheck %s: %v\n", role, err)
				return exitStatus(exitFailure)
			}
			return nil
		},
	}
}

// apiAlive asks the local api's /healthz.
func apiAlive(ctx context.Context) error {
	addr := os.Getenv("BACKFILL_HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz answered %s", resp.Status)
	}
	return nil
}

// heartbeatAlive looks for the role's heartbeat from this host.
func heartbeatAlive(ctx context.Context, role string) error {
	opt, err := asynq.ParseRedisURI(os.Getenv("REDIS_URL"))
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return fmt.Errorf("REDIS_URL: unsupported connection type %T", opt.MakeRedisClient())
	}
	defer rdb.Close()
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	n, err := rdb.Exists(ctx, heartbeatKey(role, host)).Result()
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("no heartbeat from the %s on %s within %s", role, host, heartbeatTTL)
	}
	return nil
}
