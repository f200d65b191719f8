package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// apiVerbs build the operator verbs, in the order help lists them. A verb is a file with its
// constructor (usually apiCommand around a method of cli) and one line here.
var apiVerbs = []func() *cobra.Command{
	startCommand, listCommand, showCommand, watchCommand,
	runActionCommand("pause", "pause a run after its current batch", (*apiclient.Client).Pause),
	runActionCommand("resume", "resume a paused, failed or auth-blocked run from its checkpoints", (*apiclient.Client).Resume),
	runActionCommand("cancel", "cancel a run for good", (*apiclient.Client).Cancel),
	eventsCommand, rejectedCommand, redriveCommand, settingsCommand, connectionCommand,
	webhooksCommand, doctorCommand, mappingCommand,
}

// cli is what an operator verb runs with: a client for the API and the output streams.
type cli struct {
	client         *apiclient.Client
	stdout, stderr io.Writer
	// verb names the command in messages ("backfill show: ...").
	verb string
}

// apiCommand makes cmd an operator verb that runs run with a client for BACKFILL_URL and
// BACKFILL_API_TOKEN. The client is made only when the verb runs, so --help needs neither.
// run returns the exit status; a method of cli with the signature
// func(ctx context.Context, args []string) int fits as its method expression, (*cli).name.
// A verb whose Use names an ID completes it with the recent runs' ids.
func apiCommand(cmd *cobra.Command, run func(c *cli, ctx context.Context, args []string) int) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		verb := strings.TrimPrefix(cmd.CommandPath(), "backfill ")
		client, err := clientFromEnv()
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "backfill %s: %v\n", verb, err)
			return exitStatus(exitUsage)
		}
		c := &cli{client: client, stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), verb: verb}
		return status(run(c, cmd.Context(), args))
	}
	if strings.HasSuffix(cmd.Use, " ID") && cmd.ValidArgsFunction == nil {
		cmd.ValidArgsFunction = completeRunID
	}
	return cmd
}

// clientFromEnv is a client for BACKFILL_URL (default the local api) and BACKFILL_API_TOKEN.
func clientFromEnv() (*apiclient.Client, error) {
	base := os.Getenv("BACKFILL_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	token := os.Getenv("BACKFILL_API_TOKEN")
	if token == "" {
		return nil, errors.New("BACKFILL_API_TOKEN is not set; export the API token the api role was started with")
	}
	client, err := apiclient.New(base, token, nil)
	if err != nil {
		return nil, fmt.Errorf("BACKFILL_URL: %w", err)
	}
	return client, nil
}

// completeRunID offers the recent runs' ids, each described by its kind, state and start,
// when the API can be asked; otherwise nothing (and never file names).
func completeRunID(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	client, err := clientFromEnv()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
	defer cancel()
	runs, err := client.List(ctx, 20)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, fmt.Sprintf("%s\t%s %s, %s", r.ID, r.Kind, r.State, r.CreatedAt.Local().Format("2006-01-02 15:04")))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// fail prints an API error with the field at fault and the fix the server gave.
func (c *cli) fail(verb string, err error) int {
	var apiErr *httpapi.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if apiErr.Field != "" {
			msg = apiErr.Field + ": " + msg
		}
		for _, f := range apiErr.Fields {
			msg += "\n  " + f.Field + ": " + f.Message
		}
		if apiErr.ActiveRunID != "" {
			msg += " (active run: " + apiErr.ActiveRunID + ")"
		}
		fmt.Fprintf(c.stderr, "backfill %s: %s\n", verb, msg)
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "backfill %s: %v\n", verb, err)
	return exitFailure
}

// printJSON writes v indented, for --json.
func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.fail(c.verb, err)
	}
	return exitOK
}

func startCommand() *cobra.Command {
	var (
		domains, objects, sink, key string
		dry, watch                  bool
	)
	cmd := apiCommand(&cobra.Command{
		Use:   "start",
		Short: "start a backfill; what is left out comes from the saved settings",
		Long: `backfill start: start a backfill; the domains, objects and sink mode left out come from the
saved settings (backfill settings). A second start of a scope that is already running is
refused with the active run's id.

With --watch it follows the run, and the exit status is the run's outcome.

` + exitCodesHelp,
		Example: `  backfill start --domains learn.example.com --watch
  backfill start --dry-run --objects course,published_course
  backfill start --idempotency-key first-import   # a retry returns the first run, never a second`,
		Args: cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int {
		run, err := c.client.Start(ctx, httpapi.StartBody{
			Domains: splitList(domains), Objects: splitList(objects), DryRun: dry, SinkMode: sink,
		}, key)
		if err != nil {
			return c.fail("start", err)
		}
		fmt.Fprintf(c.stdout, "started %s %s\n", run.Kind, run.ID)
		if watch {
			return c.watch(ctx, run.ID)
		}
		return exitOK
	})
	f := cmd.Flags()
	f.StringVar(&domains, "domains", "", "comma-separated Skilljar domains (default: the settings' allow-list)")
	f.StringVar(&objects, "objects", "", "comma-separated objects: "+strings.Join(pipeline.Objects(), ", ")+" (default: the settings')")
	f.BoolVar(&dry, "dry-run", false, "read and map everything, write nothing")
	f.StringVar(&sink, "sink-mode", "", "auto, collections or bulk (default: the settings')")
	f.BoolVar(&watch, "watch", false, "follow the run until it ends; the exit status is then the run's outcome")
	f.StringVar(&key, "idempotency-key", "", "a key (sent as the Idempotency-Key header) that makes a retried start return the run the first one created")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func listCommand() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := apiCommand(&cobra.Command{Use: "list", Short: "recent runs, newest first", Args: cobra.NoArgs},
		func(c *cli, ctx context.Context, _ []string) int {
			runs, err := c.client.List(ctx, limit)
			if err != nil {
				return c.fail("list", err)
			}
			if asJSON {
				return c.printJSON(runs)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tSTATE\tVERDICT\tPROGRESS\tWRITTEN\tREJECTED\tCREATED")
			for _, r := range runs {
				t := r.Total()
				verdict := "-"
				if r.Summary != nil {
					verdict = r.Summary.Verdict
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f%%\t%d\t%d\t%s\n", r.ID, r.Kind, r.State, verdict, r.Progress.Percent,
					t.Written, t.Rejected, r.CreatedAt.Local().Format("2006-01-02 15:04"))
			}
			_ = tw.Flush()
			return exitOK
		})
	cmd.Flags().IntVar(&limit, "limit", 20, "how many runs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the runs as JSON")
	return cmd
}

func showCommand() *cobra.Command {
	var asJSON bool
	cmd := apiCommand(&cobra.Command{Use: "show ID", Short: "one run: state, counters, summary", Args: cobra.ExactArgs(1)},
		func(c *cli, ctx context.Context, args []string) int {
			run, err := c.client.Get(ctx, args[0])
			if err != nil {
				return c.fail("show", err)
			}
			if asJSON {
				return c.printJSON(run)
			}
			describe(c.stdout, run)
			return exitOK
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run as JSON")
	return cmd
}

// runActionCommand is a verb that acts on one run and prints it after.
func runActionCommand(verb, short string, act func(*apiclient.Client, context.Context, string) (*runstore.Run, error)) func() *cobra.Command {
	return func() *cobra.Command {
		var asJSON bool
		cmd := apiCommand(&cobra.Command{Use: verb + " ID", Short: short, Args: cobra.ExactArgs(1)},
			func(c *cli, ctx context.Context, args []string) int {
				run, err := act(c.client, ctx, args[0])
				if err != nil {
					return c.fail(verb, err)
				}
				if asJSON {
					return c.printJSON(run)
				}
				describe(c.stdout, run)
				return exitOK
			})
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the run as JSON")
		return cmd
	}
}

func watchCommand() *cobra.Command {
	return apiCommand(&cobra.Command{
		Use:   "watch ID",
		Short: "live progress until the run ends; the exit status is its outcome",
		Long: `backfill watch: follow a run until it ends, then print it. On a terminal the progress line
is redrawn in place; elsewhere (a pipe, a CI log) a line is printed when the progress moved,
at most every 5 seconds.

` + exitCodesHelp,
		Args: cobra.ExactArgs(1),
	}, func(c *cli, ctx context.Context, args []string) int { return c.watch(ctx, args[0]) })
}

// exitCodesHelp documents the outcome statuses of watch and start --watch.
const exitCodesHelp = `Exit status:
  0  succeeded: Salesforce holds what the source has, nothing rejected
  1  failed (or the API could not be asked)
  2  usage: an unknown verb or flag, a missing argument, BACKFILL_API_TOKEN unset
  3  ended with rejected records (backfill rejected ID lists them; backfill redrive ID retries)
  4  ended, but Salesforce does not match the source (verdict mismatch)
  5  cancelled`

// watch follows a run with a progress line; the exit status is the run's outcome.
func (c *cli) watch(ctx context.Context, id string) int {
	p := newProgressPrinter(c.stdout, "", watchPrintEvery)
	run, err := c.client.Watch(ctx, id, time.Second, p.update)
	p.finish()
	if err != nil {
		return c.fail("watch", err)
	}
	describe(c.stdout, run)
	return runExit(run)
}

// runExit is the exit status of a run's outcome (exitCodesHelp).
func runExit(r *runstore.Run) int {
	switch {
	case r.State == runstore.Failed:
		return exitFailure
	case r.State == runstore.Cancelled:
		return exitCancelled
	case r.Total().Rejected > 0:
		return exitRejected
	case r.Summary != nil && r.Summary.Verdict == "mismatch":
		return exitMismatch
	case r.State == runstore.Succeeded:
		return exitOK
	}
	return exitFailure
}

// describe prints a run: its state, per-object counters, and the reconcile verdict.
func describe(w io.Writer, r *runstore.Run) {
	fmt.Fprintf(w, "run %s (%s, %s): %s\n", r.ID, r.Kind, r.Trigger, r.State)
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  OBJECT\tREAD\tWRITTEN\tSKIPPED\tREJECTED\tFILTERED\tSALESFORCE\t")
	sfCount := map[string]int64{}
	if r.Summary != nil {
		for _, o := range r.Summary.Objects {
			sfCount[o.Object] = o.SalesforceCount
		}
	}
	objects := pipeline.Objects()
	if r.Plan != nil {
		objects = r.Plan.Objects
	}
	for _, o := range objects {
		c := r.Counters[o]
		sf := "-"
		if n, ok := sfCount[o]; ok && n >= 0 {
			sf = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", o, c.Read, c.Written, c.Skipped, c.Rejected, c.Filtered, sf)
	}
	_ = tw.Flush()
	if r.Summary != nil {
		fmt.Fprintf(w, "  verdict: %s: %s\n", r.Summary.Verdict, r.Summary.Message)
	}
}
