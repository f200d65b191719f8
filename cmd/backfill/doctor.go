package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// doctorCommand is `backfill doctor [--json]`: the report of GET /v1/doctor, one entry a
// line (or the JSON); exit status 0 when nothing blocks, 1 when something does.
func doctorCommand() *cobra.Command {
	var asJSON bool
	cmd := apiCommand(&cobra.Command{
		Use:   "doctor",
		Short: "test the connections and the mapping against the org; exit status 1 while something blocks a start",
		Args:  cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int { return c.doctor(ctx, asJSON) })
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func (c *cli) doctor(ctx context.Context, asJSON bool) int {
	rep, err := c.client.Doctor(ctx)
	if err != nil {
		return c.fail(c.verb, err)
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteText(c.stdout)
	}
	if rep.Blocking {
		fmt.Fprintln(c.stderr, "backfill doctor: something blocks; a start is refused (or waits) until the fixes above are made")
		return exitFailure
	}
	return exitOK
}

// mappingCommand is `backfill mapping suggest [--out FILE]`: the mapping of GET
// /v1/mapping/suggestion as a mapping file on stdout (or FILE), and every difference for
// review on stderr, one a line; the file carries the same notes, marked REVIEW.
func mappingCommand() *cobra.Command {
	var out string
	suggest := apiCommand(&cobra.Command{
		Use:   "suggest",
		Short: "a mapping file fitted to the org's describe; the differences to review on stderr",
		Args:  cobra.NoArgs,
	}, func(c *cli, ctx context.Context, _ []string) int { return c.mappingSuggest(ctx, out) })
	suggest.Flags().StringVar(&out, "out", "", "write the mapping file here instead of stdout")
	cmd := &cobra.Command{Use: "mapping", Short: "the field mapping: fit it to the org", Args: cobra.NoArgs}
	cmd.AddCommand(suggest)
	return cmd
}

func (c *cli) mappingSuggest(ctx context.Context, out string) int {
	s, err := c.client.MappingSuggestion(ctx)
	if err != nil {
		return c.fail(c.verb, err)
	}
	b, err := json.MarshalIndent(s.Mapping, "", "  ")
	if err != nil {
		return c.fail(c.verb, err)
	}
	b = append(b, '\n')
	if out == "" {
		_, err = c.stdout.Write(b)
	} else {
		err = os.WriteFile(out, b, 0o644)
	}
	if err != nil {
		return c.fail(c.verb, err)
	}
	for _, r := range s.Review {
		what := r.Object
		if r.Field != "" {
			what += "." + r.Field
		}
		fmt.Fprintf(c.stderr, "review %s: %s\n", what, r.Note)
	}
	fmt.Fprintf(c.stderr, "backfill mapping suggest: %d difference(s) to review before BACKFILL_MAPPING_FILE names the file\n", len(s.Review))
	return exitOK
}
