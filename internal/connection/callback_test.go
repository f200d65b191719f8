package connection_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestACallbackFailingOnOurSideShowsNoCauseAndLogsIt(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	cb := e.authorize()
	e.redis.Stop()
	resp, err := noRedirects.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "the server log has the cause") {
		t.Fatalf("answered %d: %s", resp.StatusCode, body)
	}
	for _, leak := range []string{"dial", "connection refused", "127.0.0.1", "OAuth state"} {
		if strings.Contains(body, leak) {
			t.Fatalf("the page shows the cause (%q): %s", leak, body)
		}
	}
	if logs := e.logs.String(); !strings.Contains(logs, "the OAuth callback failed") || !strings.Contains(logs, "check OAuth state") {
		t.Fatalf("the log lacks the cause:\n%s", logs)
	}
}
