package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func eventsCommand() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := apiCommand(&cobra.Command{Use: "events ID", Short: "a run's activity log, oldest first", Args: cobra.ExactArgs(1)},
		func(c *cli, ctx context.Context, args []string) int {
			events, err := c.client.Events(ctx, args[0], limit)
			if err != nil {
				return c.fail(c.verb, err)
			}
			if asJSON {
				return c.printJSON(events)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tLEVEL\tKIND\tSTREAM\tMESSAGE")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Level, e.Kind, e.Stream, e.Message)
			}
			_ = tw.Flush()
			return exitOK
		})
	cmd.Flags().IntVar(&limit, "limit", 100, "how many of the most recent events (at most 1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the events as JSON")
	return cmd
}

// rejectedPageSize is how many records a --csv export asks for per request (the API's most).
const rejectedPageSize = 1000

func rejectedCommand() *cobra.Command {
	var offset, limit int
	var asCSV, asJSON bool
	cmd := apiCommand(&cobra.Command{
		Use:   "rejected ID",
		Short: "the records Salesforce refused in a run, with their error codes",
		Example: `  backfill rejected RUN_ID
  backfill rejected RUN_ID --csv > rejected.csv   # every record, for a spreadsheet`,
		Args: cobra.ExactArgs(1),
	}, func(c *cli, ctx context.Context, args []string) int {
		if asCSV {
			return c.rejectedCSV(ctx, args[0])
		}
		page, err := c.client.Rejected(ctx, args[0], offset, limit)
		if err != nil {
			return c.fail(c.verb, err)
		}
		if asJSON {
			return c.printJSON(page)
		}
		fmt.Fprintf(c.stdout, "%d rejected records", page.Total)
		if len(page.Rejected) > 0 && int64(len(page.Rejected)) < page.Total {
			fmt.Fprintf(c.stdout, ", %d to %d shown (--offset, --limit, or --csv for all)", page.Offset+1, page.Offset+len(page.Rejected))
		}
		fmt.Fprintln(c.stdout)
		if page.Dropped > 0 {
			fmt.Fprintf(c.stdout, "%d more were rejected beyond what the ledger keeps\n", page.Dropped)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "OBJECT\tEXTERNAL ID\tCODE\tFIELDS\tMESSAGE")
		for _, r := range page.Rejected {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Object, r.ExternalID, r.Code, strings.Join(r.Fields, ","), r.Message)
		}
		_ = tw.Flush()
		return exitOK
	})
	f := cmd.Flags()
	f.BoolVar(&asCSV, "csv", false, "print every rejected record as CSV (object, sobject, external_id, code, fields, message, stream, at)")
	f.BoolVar(&asJSON, "json", false, "print the page as JSON, rows included")
	f.IntVar(&offset, "offset", 0, "skip this many records")
	f.IntVar(&limit, "limit", 100, "show this many records (at most 1000)")
	cmd.MarkFlagsMutuallyExclusive("csv", "json")
	return cmd
}

// rejectedCSV pages through the whole ledger.
func (c *cli) rejectedCSV(ctx context.Context, id string) int {
	w := csv.NewWriter(c.stdout)
	_ = w.Write([]string{"object", "sobject", "external_id", "code", "fields", "message", "stream", "at"})
	for offset := 0; ; {
		page, err := c.client.Rejected(ctx, id, offset, rejectedPageSize)
		if err != nil {
			w.Flush()
			return c.fail(c.verb, err)
		}
		for _, r := range page.Rejected {
			_ = w.Write([]string{r.Object, r.SObject, r.ExternalID, r.Code, strings.Join(r.Fields, ";"), r.Message, r.Stream, r.At.UTC().Format("2006-01-02T15:04:05Z")})
		}
		offset += len(page.Rejected)
		if len(page.Rejected) == 0 || int64(offset) >= page.Total {
			break
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return c.fail(c.verb, err)
	}
	return exitOK
}

func redriveCommand() *cobra.Command {
	var watch bool
	cmd := apiCommand(&cobra.Command{
		Use:   "redrive ID",
		Short: "start a run that sends an ended run's rejected records again, parents first",
		Long: `backfill redrive: after fixing what Salesforce refused (backfill rejected ID shows it), start a
run that sends exactly those records again.

With --watch it follows the run, and the exit status is the run's outcome.

` + exitCodesHelp,
		Args: cobra.ExactArgs(1),
	}, func(c *cli, ctx context.Context, args []string) int {
		run, err := c.client.RetryRejected(ctx, args[0])
		if err != nil {
			return c.fail(c.verb, err)
		}
		fmt.Fprintf(c.stdout, "started %s %s for the rejected records of %s\n", run.Kind, run.ID, args[0])
		if watch {
			return c.watch(ctx, run.ID)
		}
		return exitOK
	})
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the new run until it ends; the exit status is then its outcome")
	return cmd
}
