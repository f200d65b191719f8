package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
