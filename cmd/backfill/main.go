// The backfill command is the Skilljar → Salesforce backfill engine in one binary: the
// production roles (api, worker, scheduler), an all-in-one dev mode and demo on an embedded
// Redis, the simulators, and operator verbs that talk to the HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sjbackfill/backfill/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses. A watched run's outcome has its own status (see runExit); the README's
// table of them is a contract for scripts.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitRejected: the run ended with records Salesforce refused (in its ledger).
	exitRejected = 3
	// exitMismatch: the run ended but Salesforce does not hold what the source has.
	exitMismatch = 4
	// exitCancelled: the run was cancelled.
	exitCancelled = 5
)

// exitStatus carries a command's exit status out of cobra, which knows only errors.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// status turns a command's exit status into what its RunE returns.
func status(code int) error {
	if code == exitOK {
		return nil
	}
	return exitStatus(code)
}

// Help lists the verbs in the order an operator meets them, not alphabetically.
func init() { cobra.EnableCommandSorting = false }

// Command groups, in the order the root's help lists them.
const (
	groupRoles = "roles"
	groupTry   = "try"
	groupVerbs = "verbs"
)

// commands builds every command of the binary. A verb is one file holding its constructor
// and one line in the lists below (roles here, operator verbs in apiVerbs).
func commands(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "backfill",
		Short: "move a whole Skilljar history into Salesforce, resumably",
		Long: `backfill: move a whole Skilljar history into Salesforce, resumably.

The production roles are configured by the environment (listed below); the operator verbs
talk to the API at BACKFILL_URL with BACKFILL_API_TOKEN. Flags go before or after arguments.`,
		Args: cobra.NoArgs,
		// A bare `backfill` is a usage error: a script that forgot its verb must not pass.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Help()
			return exitStatus(exitUsage)
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetContext(ctx)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddGroup(
		&cobra.Group{ID: groupRoles, Title: "Production roles (configured by the environment):"},
		&cobra.Group{ID: groupTry, Title: "Trying it out:"},
		&cobra.Group{ID: groupVerbs, Title: "Operator verbs (talk to the API at BACKFILL_URL with BACKFILL_API_TOKEN):"},
	)
	for _, c := range []*cobra.Command{
		roleCommand(config.RoleAPI, "HTTP API, settings page, OAuth callback, /monitoring, /metrics, /v1/docs"),
		roleCommand(config.RoleWorker, "runs backfill slices; start as many as you like against one Redis"),
		roleCommand(config.RoleScheduler, "enqueues catch-up runs on BACKFILL_CATCHUP_CRON"),
		healthcheckCommand(),
	} {
		c.GroupID = groupRoles
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{devCommand(), demoCommand(), simCommand()} {
		c.GroupID = groupTry
		root.AddCommand(c)
	}
	for _, verb := range apiVerbs {
		c := verb()
		c.GroupID = groupVerbs
		root.AddCommand(c)
	}
	root.AddCommand(versionCommand())
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		defaultHelp(cmd, args)
		if cmd == root {
			fmt.Fprint(cmd.OutOrStdout(), "\nEnvironment:\n"+config.Help())
		}
	})
	return root
}

// run runs the command line and returns the exit status: the command's own, or exitUsage for
// an unknown verb, a bad flag or a wrong number of arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := commands(ctx, stdout, stderr)
	root.SetArgs(goFlagStyle(root, args))
	cmd, err := root.ExecuteC()
	var st exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &st):
		return int(st)
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return exitUsage
}

// goFlagStyle rewrites -name to --name for the long flags the commands define: before they
// moved to pflag the commands parsed with Go's flag package, which takes both, and scripts
// written then keep working.
func goFlagStyle(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name] {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}
