package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sjbackfill/backfill/internal/settings"
)

func settingsCommand() *cobra.Command {
	var asJSON bool
	cmd := apiCommand(&cobra.Command{
		Use:   "settings",
		Short: "the saved settings: domains, objects, environment, contacts, sink mode",
		Args:  cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int {
		st, err := c.client.Settings(ctx)
		if err != nil {
			return c.fail(c.verb, err)
		}
		if asJSON {
			return c.printJSON(st)
		}
		describeSettings(c.stdout, st)
		return exitOK
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the settings as JSON (the form settings put reads)")
	cmd.AddCommand(apiCommand(&cobra.Command{
		Use:   "put FILE",
		Short: "replace the settings with a JSON file (- for stdin); every problem is listed, nothing saved then",
		Example: `  backfill settings --json > settings.json && $EDITOR settings.json && backfill settings put settings.json
  echo '{"domains": ["learn.example.com"], "sink_mode": "auto"}' | backfill settings put -`,
		Args: cobra.ExactArgs(1),
	}, (*cli).putSettings))
	return cmd
}

func (c *cli) putSettings(ctx context.Context, args []string) int {
	var in io.Reader = os.Stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintf(c.stderr, "backfill %s: %v\n", c.verb, err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	var st settings.Settings
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		fmt.Fprintf(c.stderr, "backfill %s: %s is not settings JSON: %v\n", c.verb, args[0], err)
		return exitUsage
	}
	saved, err := c.client.PutSettings(ctx, st)
	if err != nil {
		return c.fail(c.verb, err)
	}
	describeSettings(c.stdout, saved)
	return exitOK
}

func describeSettings(w io.Writer, st settings.Settings) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	list := func(v []string, empty string) string {
		if len(v) == 0 {
			return empty
		}
		return strings.Join(v, ", ")
	}
	env := st.Environment
	if env == "" {
		env = "(SALESFORCE_ENVIRONMENT)"
	}
	fmt.Fprintf(tw, "domains\t%s\n", list(st.Domains, "every domain"))
	fmt.Fprintf(tw, "objects\t%s\n", list(st.Objects, "every mapped object"))
	fmt.Fprintf(tw, "environment\t%s\n", env)
	fmt.Fprintf(tw, "link contacts\t%t\n", st.LinkContacts)
	fmt.Fprintf(tw, "create contacts\t%t\n", st.CreateContacts)
	fmt.Fprintf(tw, "contact match\t%s\n", st.ContactMatch)
	fmt.Fprintf(tw, "sink mode\t%s\n", st.SinkMode)
	if st.UpdatedAt != nil {
		fmt.Fprintf(tw, "saved\t%s\n", st.UpdatedAt.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "saved\tnever (these are the defaults)\n")
	}
	_ = tw.Flush()
}

func connectionCommand() *cobra.Command {
	var asJSON bool
	cmd := apiCommand(&cobra.Command{
		Use:   "connection",
		Short: "the Salesforce connection: state, org, user, instance, last refresh, last error",
		Args:  cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int {
		st, err := c.client.Connection(ctx)
		if err != nil {
			return c.fail(c.verb, err)
		}
		if asJSON {
			return c.printJSON(st)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s\t%s\n", k, v)
			}
		}
		at := func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.Local().Format(time.RFC3339)
		}
		row("state", st.State)
		row("org", st.OrgID)
		row("user", st.Username)
		row("environment", st.Environment)
		row("instance", st.InstanceURL)
		row("connected", at(st.ConnectedAt))
		row("last refresh", at(st.LastRefresh))
		row("last error", st.LastError)
		row("last error at", at(st.LastErrorAt))
		_ = tw.Flush()
		return exitOK
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")

	var limit int
	events := apiCommand(&cobra.Command{Use: "events", Short: "the connection's activity log, newest first", Args: cobra.NoArgs},
		func(c *cli, ctx context.Context, _ []string) int {
			evs, err := c.client.ConnectionEvents(ctx, limit)
			if err != nil {
				return c.fail(c.verb, err)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tMESSAGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Message)
			}
			_ = tw.Flush()
			return exitOK
		})
	events.Flags().IntVar(&limit, "limit", 100, "how many of the most recent events (at most 1000)")

	var yes bool
	disconnect := apiCommand(&cobra.Command{
		Use:   "disconnect --yes",
		Short: "revoke the Salesforce grant and forget its tokens; runs wait for authentication until someone connects again",
		Args:  cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int {
		if !yes {
			fmt.Fprintf(c.stderr, "backfill %s: runs cannot write to Salesforce until someone connects again; add --yes to disconnect\n", c.verb)
			return exitUsage
		}
		st, err := c.client.Disconnect(ctx)
		if err != nil {
			return c.fail(c.verb, err)
		}
		fmt.Fprintf(c.stdout, "disconnected: the connection is %s\n", st.State)
		return exitOK
	})
	disconnect.Flags().BoolVar(&yes, "yes", false, "confirm the disconnect")
	cmd.AddCommand(events, disconnect)
	return cmd
}
