package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestSimRefusesUnknownOrgProfilesAndUserOrders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--org-profile", "master-detail,lockz"}, `unknown org profile "lockz"; known: master-detail, autonumber, sparse, picklist, automation, locks, developer-edition, dirty`},
		{[]string{"--user-order", "sideways"}, `UserOrder must be "created", "newest_first" or "unstable", got "sideways"`},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"sim", "--skilljar-addr", "127.0.0.1:0", "--salesforce-addr", "127.0.0.1:0"}, tc.args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("sim %v = %d, stderr %q; want exit %d saying %q", tc.args, code, stderr.String(), exitFailure, tc.want)
		}
	}
}

func TestSimLockErrorRateReachesTheSalesforceSimulatorAndIsAProbability(t *testing.T) {
	var f simFlags
	fs := pflag.NewFlagSet("sim", pflag.ContinueOnError)
	f.register(fs, defaultSimFlags())
	if err := fs.Parse([]string{"--lock-error-rate", "0.25"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := f.salesforce(); err != nil || cfg.LockRate != 0.25 {
		t.Fatalf("LockRate %v (%v), want 0.25", cfg.LockRate, err)
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"sim", "--skilljar-addr", "127.0.0.1:0", "--salesforce-addr", "127.0.0.1:0", "--lock-error-rate", "1.5"}, &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--lock-error-rate") {
		t.Fatalf("--lock-error-rate 1.5: exit %d, %q", code, stderr.String())
	}
}
