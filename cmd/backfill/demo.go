package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sjbackfill/backfill/internal/apiclient"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/httpapi"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
)

// demoDefaults are the demo's own: a few thousand learners paced like a real Skilljar key
// scaled up tenfold, so the demo takes about a minute, on ports of its own.
func demoDefaults() devOptions {
	sim := defaultSimFlags()
	sim.users = 3000
	sim.skilljarAddr, sim.salesforceAddr = "127.0.0.1:0", "127.0.0.1:0"
	sim.perMinute, sim.perHour = 6000, 0
	sim.latency = 5 * time.Millisecond
	return devOptions{sim: sim, addr: "127.0.0.1:0", logLevel: "warn"}
}

func demoCommand() *cobra.Command {
	var o devOptions
	var serve bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "a whole backfill end to end on the embedded stack, with a verdict (exit 0 only when Salesforce matches)",
		Long: `backfill demo: the dev stack on an embedded Redis and both simulators (whatever the shell's
environment holds), the OAuth flow against the simulated Salesforce, a backfill started through
the API and watched to the end, and a verdict that compares Salesforce with the source record by
record. It exits 0 only when they match.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return status(runDemo(cmd.Context(), o, serve, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	o.register(cmd.Flags(), demoDefaults(), "address of the API, the page and /monitoring (port 0 picks a free one)")
	cmd.Flags().BoolVar(&serve, "serve", false, "keep the server up after the run, for exploring")
	return cmd
}

// runDemo is the newcomer's first run.
func runDemo(ctx context.Context, o devOptions, serve bool, stdout, stderr io.Writer) int {
	// The demo always runs on its own embedded Redis and simulators, whatever the shell holds.
	d, err := startDev(ctx, o, func(string) string { return "" }, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "backfill demo: %v\n", err)
		return exitFailure
	}
	defer d.close()
	fmt.Fprintf(stdout, "backfill demo: %d learners in %d domains, %d courses, on simulated Skilljar and Salesforce\n",
		o.sim.users, o.sim.domains, o.sim.courses)

	code := d.demo(ctx, stdout)
	if serve {
		fmt.Fprintln(stdout, "\nThe server stays up for exploring; press Ctrl-C to stop.")
		d.printURLs(stdout)
		if err := d.wait(ctx); err != nil {
			fmt.Fprintf(stderr, "backfill demo: %v\n", err)
			return exitFailure
		}
	}
	return code
}

func (d *devStack) demo(ctx context.Context, stdout io.Writer) int {
	step := func(format string, args ...any) { fmt.Fprintf(stdout, "• "+format+"\n", args...) }
	fail := func(what string, err error) int {
		fmt.Fprintf(stdout, "✗ %s: %v\n", what, err)
		return exitFailure
	}
	client, err := apiclient.New(d.baseURL, d.cfg.APIToken, nil)
	if err != nil {
		return fail("API client", err)
	}
	step("connecting Salesforce through the OAuth flow (PKCE, auto-approved by the simulator)")
	st, err := d.connect(ctx, client)
	if err != nil {
		return fail("connect Salesforce", err)
	}
	step("connected to org %s as %s at %s", st.OrgID, st.Username, st.InstanceURL)

	run, err := client.Start(ctx, httpapi.StartBody{}, "")
	if err != nil {
		return fail("start the backfill", err)
	}
	step("backfill %s started through POST /v1/backfills", run.ID)
	p := newProgressPrinter(stdout, "  ", demoPrintEvery)
	run, err = client.Watch(ctx, run.ID, 250*time.Millisecond, p.update)
	p.finish()
	if err != nil {
		return fail("watch the backfill", err)
	}
	fmt.Fprintln(stdout)
	summaryTable(stdout, run)

	rep := simcheck.Compare(d.sims.sj.Org(), d.sims.sf)
	if run.State != runstore.Succeeded {
		fmt.Fprintf(stdout, "\n✗ the run ended %s: %s\n", run.State, run.Error)
		return exitFailure
	}
	if !rep.Exact() {
		fmt.Fprintf(stdout, "\n✗ Salesforce does not match the source:\n%s\n", rep)
		return exitFailure
	}
	if run.Summary == nil || run.Summary.Verdict != "exact" {
		fmt.Fprintf(stdout, "\n✗ the run's own reconcile disagrees: %+v\n", run.Summary)
		return exitFailure
	}
	elapsed := run.FinishedAt.Sub(*run.StartedAt).Round(100 * time.Millisecond)
	fmt.Fprintf(stdout, "\n✓ Salesforce matches the source exactly: %d records checked field by field, in %s.\n",
		total(rep.Expected), elapsed)
	return exitOK
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// connect walks the OAuth web-server flow and checks that the connection is up.
func (d *devStack) connect(ctx context.Context, client *apiclient.Client) (connection.Status, error) {
	if err := walkConnectFlow(ctx, d.baseURL, d.cfg.APIToken); err != nil {
		return connection.Status{}, err
	}
	st, err := client.Connection(ctx)
	if err != nil {
		return st, err
	}
	if st.State != connection.Connected {
		return st, errors.New("the connection is " + st.State + ": " + st.LastError)
	}
	return st, nil
}

// walkConnectFlow goes through the OAuth web-server flow as an operator's browser would: the
// API's connect route (a POST, with the token as the Basic password), the login host's authorize page
// (which the simulator approves at once), and the callback back to the settings page.
func walkConnectFlow(ctx context.Context, baseURL, token string) error {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/salesforce/connect", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("operator", token)
	resp, err := browser.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if !strings.Contains(resp.Request.URL.RawQuery, "connected=1") {
		return fmt.Errorf("the connect flow ended at %s with %s", resp.Request.URL.Path, resp.Status)
	}
	return nil
}

// summaryTable prints per object what was read, written, skipped (a learner met again in a
// second domain) and rejected, and what Salesforce holds.
func summaryTable(w io.Writer, r *runstore.Run) {
	sf := map[string]int64{}
	if r.Summary != nil {
		for _, o := range r.Summary.Objects {
			sf[o.Object] = o.SalesforceCount
		}
	}
	if r.Plan == nil {
		return // preflight stopped the run before it planned anything
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "object\tread\twritten\tskipped\trejected\tin Salesforce\t")
	for _, o := range r.Plan.Objects {
		c := r.Counters[o]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", o, c.Read, c.Written, c.Skipped, c.Rejected, sf[o])
	}
	_ = tw.Flush()
	if r.Summary == nil {
		return
	}
	for _, d := range r.Summary.Domains {
		fmt.Fprintf(w, "domain %s: %d members in Skilljar, %d accounted for (%d found by the verification walks, %d unaccounted for)\n",
			d.Domain, d.Members, d.Accounted, d.Found, d.Unaccounted)
	}
	fmt.Fprintf(w, "reconcile: %s\n", r.Summary.Message)
}
