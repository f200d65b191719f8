package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
)

// cliVerbs are the operator verbs that talk to a running API.
var cliVerbs = map[string]bool{"start": true, "list": true, "show": true, "watch": true, "pause": true, "resume": true, "cancel": true,
	"doctor": true, "mapping": true}

const cliUsage = `Operator verbs (talk to the API at BACKFILL_URL with BACKFILL_API_TOKEN):
  backfill start [--domains a,b] [--objects x,y] [--dry-run] [--sink-mode auto|collections|bulk] [--watch]
  backfill list                 recent runs
  backfill show ID [--json]     one run: state, counters, summary
  backfill watch ID             live progress until the run ends; exit status 0 when it succeeded
  backfill pause ID | resume ID | cancel ID
  backfill doctor [--json]      test the connections and the mapping; exit status 1 when something blocks
  backfill mapping suggest [--out FILE]
                                a mapping file fitted to the org; the differences to review on stderr
`

// runCLI runs one operator verb.
func runCLI(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	base := os.Getenv("BACKFILL_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	token := os.Getenv("BACKFILL_API_TOKEN")
	if token == "" {
		fmt.Fprintln(stderr, "backfill "+verb+": BACKFILL_API_TOKEN is not set; export the API token the api role was started with")
		return exitUsage
	}
	client, err := apiclient.New(base, token, nil)
	if err != nil {
		fmt.Fprintf(stderr, "backfill %s: BACKFILL_URL: %v\n", verb, err)
		return exitUsage
	}
	fs := flag.NewFlagSet("backfill "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cliUsage) }
	c := &cli{client: client, stdout: stdout, stderr: stderr}
	switch verb {
	case "start":
		return c.start(ctx, fs, args)
	case "doctor":
		return c.doctor(ctx, fs, args)
	case "mapping":
		return c.mappingSuggest(ctx, fs, args)
	case "list":
		if fs.Parse(args) != nil {
			return exitUsage
		}
		return c.list(ctx)
	}
	asJSON := fs.Bool("json", false, "print the run as JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "backfill %s: give one run id\n\n%s", verb, cliUsage)
		return exitUsage
	}
	id := fs.Arg(0)
	var run *runstore.Run
	switch verb {
	case "show":
		run, err = client.Get(ctx, id)
	case "watch":
		return c.watch(ctx, id)
	case "pause":
		run, err = client.Pause(ctx, id)
	case "resume":
		run, err = client.Resume(ctx, id)
	case "cancel":
		run, err = client.Cancel(ctx, id)
	}
	if err != nil {
		return c.fail(verb, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(run)
		return exitOK
	}
	describe(stdout, run)
	return exitOK
}

type cli struct {
	client         *apiclient.Client
	stdout, stderr io.Writer
}

// fail prints an API error with the field at fault and the fix the server gave.
func (c *cli) fail(verb string, err error) int {
	var apiErr *httpapi.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if apiErr.Field != "" {
			msg = apiErr.Field + ": " + msg
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

func (c *cli) start(ctx context.Context, fs *flag.FlagSet, args []string) int {
	domains := fs.String("domains", "", "comma-separated Skilljar domains (default: the settings' allow-list)")
	objects := fs.String("objects", "", "comma-separated objects: student, course, published_course, course_progress")
	dry := fs.Bool("dry-run", false, "read and map everything, write nothing")
	sink := fs.String("sink-mode", "", "auto, collections or bulk (default: the settings')")
	watch := fs.Bool("watch", false, "follow the run until it ends")
	key := fs.String("idempotency-key", "", "a key that makes a retried start return the first run")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	run, err := c.client.Start(ctx, httpapi.StartBody{
		Domains: splitList(*domains), Objects: splitList(*objects), DryRun: *dry, SinkMode: *sink,
	}, *key)
	if err != nil {
		return c.fail("start", err)
	}
	fmt.Fprintf(c.stdout, "started %s %s\n", run.Kind, run.ID)
	if *watch {
		return c.watch(ctx, run.ID)
	}
	return exitOK
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

func (c *cli) list(ctx context.Context) int {
	runs, err := c.client.List(ctx, 20)
	if err != nil {
		return c.fail("list", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tPROGRESS\tWRITTEN\tREJECTED\tCREATED")
	for _, r := range runs {
		t := r.Total()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%d\t%d\t%s\n", r.ID, r.Kind, r.State, r.Progress.Percent,
			t.Written, t.Rejected, r.CreatedAt.Local().Format("2006-01-02 15:04"))
	}
	_ = tw.Flush()
	return exitOK
}

// watch follows a run with a live progress line; the exit status says whether it
// succeeded with Salesforce matching.
func (c *cli) watch(ctx context.Context, id string) int {
	live := isTerminal(c.stdout)
	var last time.Time
	run, err := c.client.Watch(ctx, id, time.Second, func(r *runstore.Run) {
		line := progressLine(r)
		switch {
		case live:
			fmt.Fprintf(c.stdout, "\r\033[K%s", line)
		case time.Since(last) >= 10*time.Second || r.State.Terminal():
			fmt.Fprintln(c.stdout, line)
			last = time.Now()
		}
	})
	if live {
		fmt.Fprintln(c.stdout)
	}
	if err != nil {
		return c.fail("watch", err)
	}
	describe(c.stdout, run)
	return runExit(run)
}

// runExit is 0 for a run that succeeded without a mismatch, 1 otherwise.
func runExit(r *runstore.Run) int {
	if r.State == runstore.Succeeded && (r.Summary == nil || r.Summary.Verdict != "mismatch") {
		return exitOK
	}
	return exitFailure
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine renders a run's progress: a bar, the share done, the rate and the ETA.
func progressLine(r *runstore.Run) string {
	const width = 30
	p := r.Progress
	filled := int(p.Percent / 100 * width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	line := fmt.Sprintf("%s %5.1f%%  %d/%d learners", bar, p.Percent, p.Done, p.Total)
	if p.Rate > 0 {
		line += fmt.Sprintf("  %.1f/s", p.Rate)
	}
	if p.ETASeconds > 0 {
		line += "  ETA " + (time.Duration(p.ETASeconds) * time.Second).String()
	}
	t := r.Total()
	return line + fmt.Sprintf("  written %d  rejected %d  [%s]", t.Written, t.Rejected, r.State)
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
