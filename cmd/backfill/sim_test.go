package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestSimLockErrorRateReachesTheSalesforceSimulatorAndIsAProbability(t *testing.T) {
	var f simFlags
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"--lock-error-rate", "0.25"}); err != nil {
		t.Fatal(err)
	}
	if got := f.salesforce().LockRate; got != 0.25 {
		t.Fatalf("LockRate %v, want 0.25", got)
	}
	var stderr bytes.Buffer
	if code := runSim(t.Context(), []string{"--lock-error-rate", "1.5"}, &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--lock-error-rate") {
		t.Fatalf("--lock-error-rate 1.5: exit %d, %q", code, stderr.String())
	}
}
