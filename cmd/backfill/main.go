// The backfill command is the Skilljar → Salesforce backfill engine in one binary: the
// production roles (api, worker, scheduler), an all-in-one dev mode and demo on an embedded
// Redis, the simulators, and operator verbs that talk to the HTTP API.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sjbackfill/backfill/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	case config.RoleAPI, config.RoleWorker, config.RoleScheduler:
		return runRole(ctx, cmd, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, stderr)
	}
	if cliVerbs[cmd] {
		return runCLI(ctx, cmd, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "backfill: unknown command %q\n\n", cmd)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `backfill: move a whole Skilljar history into Salesforce, resumably.

Production roles (configured by the environment below):
  backfill api         HTTP API, settings page, OAuth callback, /monitoring, /metrics
  backfill worker      runs backfill slices; start as many as you like against one Redis
  backfill scheduler   enqueues catch-up runs on BACKFILL_CATCHUP_CRON

  backfill healthcheck exit 0 when the api on BACKFILL_HTTP_ADDR answers /healthz (for container
                       healthchecks on images without curl)

Trying it out:
  backfill dev         every role in one process on an embedded Redis and both simulators
                       (unless REDIS_URL or real Skilljar/Salesforce credentials are set)
  backfill demo        a whole backfill end to end on the embedded stack, with a verdict
                       (--users N sets the size; --serve keeps the server up afterwards)
  backfill sim         both simulators standalone (backfill sim -h for flags)

`+cliUsage+`
Environment:
`)
	fmt.Fprint(w, config.Help())
}

// healthcheck asks the local api's /healthz, for container healthchecks.
func healthcheck(ctx context.Context, stderr io.Writer) int {
	addr := os.Getenv("BACKFILL_HTTP_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		fmt.Fprintf(stderr, "backfill healthcheck: %v\n", err)
		return exitFailure
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "backfill healthcheck: %v\n", err)
		return exitFailure
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "backfill healthcheck: /healthz answered %s\n", resp.Status)
		return exitFailure
	}
	return exitOK
}
