package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// commit is the VCS revision for builds that carry no VCS information (an image built
// from a context without .git): go build -ldflags "-X main.commit=$(git rev-parse HEAD)".
var commit string

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "the module version, VCS commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo()
			printVersion(cmd.OutOrStdout(), info, commit)
			return nil
		},
	}
}

// printVersion writes what the build recorded: go build stamps the main module's version
// (a tag when built from a module version, "(devel)" from a checkout) and, from a checkout,
// the commit, its time and whether the tree had changes.
func printVersion(w io.Writer, info *debug.BuildInfo, fallbackCommit string) {
	if info == nil {
		fmt.Fprintln(w, "backfill: no build information (built without module support)")
		return
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = fallbackCommit
	}
	if rev == "" {
		rev = "unknown (built without VCS information)"
	}
	if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	fmt.Fprintf(w, "backfill %s\n  module  %s\n  commit  %s\n", info.Main.Version, info.Main.Path, rev)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(w, "  date    %s\n", t)
	}
	fmt.Fprintf(w, "  go      %s\n", info.GoVersion)
}
