package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sjbackfill/backfill/internal/config"
	"github.com/sjbackfill/backfill/internal/logging"
	"github.com/sjbackfill/backfill/internal/service"
)

// runRole starts a production role from the environment; a bad variable stops it with one
// line naming the variable.
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
	parts, err := service.Build(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: %v\n", role, err)
		return exitUsage
	}
	defer parts.Close()
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
