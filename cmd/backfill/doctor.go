package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

// doctor is `backfill doctor [--json]`: the report of GET /v1/doctor, one entry a line
// (or the JSON); exit status 0 when nothing blocks, 1 when something does.
func (c *cli) doctor(ctx context.Context, fs *flag.FlagSet, args []string) int {
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		return exitUsage
	}
	rep, err := c.client.Doctor(ctx)
	if err != nil {
		return c.fail("doctor", err)
	}
	if *asJSON {
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

// mappingSuggest is `backfill mapping suggest [--out FILE]`: the mapping of GET
// /v1/mapping/suggestion as a mapping file on stdout (or FILE), and every difference for
// review on stderr, one a line; the file carries the same notes, marked REVIEW.
func (c *cli) mappingSuggest(ctx context.Context, fs *flag.FlagSet, args []string) int {
	out := fs.String("out", "", "write the mapping file here instead of stdout")
	if len(args) == 0 || args[0] != "suggest" {
		fmt.Fprint(c.stderr, "backfill mapping: the one subcommand is suggest\n\n"+cliUsage)
		return exitUsage
	}
	if fs.Parse(args[1:]) != nil || fs.NArg() != 0 {
		return exitUsage
	}
	s, err := c.client.MappingSuggestion(ctx)
	if err != nil {
		return c.fail("mapping suggest", err)
	}
	b, err := json.MarshalIndent(s.Mapping, "", "  ")
	if err != nil {
		return c.fail("mapping suggest", err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = c.stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		return c.fail("mapping suggest", err)
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
