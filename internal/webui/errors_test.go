package webui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func TestAnInternalErrorShowsOnlyARequestIDAndTheLogHasTheCauseUnderItOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	e.Redis.Stop()
	for _, p := range []page{
		e.get(t, "/runs/r20250102t150405a1b2c3d4"), // an error page
		e.post(t, "/backfills", url.Values{}),      // an alert on the index page
	} {
		p.requireStatus(t, http.StatusInternalServerError)
		id := p.header.Get("X-Request-Id")
		if id == "" {
			t.Fatal("the answer carries no X-Request-Id")
		}
		p.requireContains(t, "the server log has the cause under request id "+id+".")
		for _, leak := range []string{"dial", "connection refused", "127.0.0.1"} {
			if strings.Contains(p.text(), leak) {
				t.Fatalf("the page shows the cause (%q):\n%s", leak, p.body)
			}
		}
		logged := 0
		for line := range strings.Lines(e.Log.String()) {
			if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, `"message":"settings page failed"`) &&
				strings.Contains(line, `"error":`) {
				logged++
			}
		}
		if logged != 1 {
			t.Fatalf("%d log lines have the cause under request id %s, want 1:\n%s", logged, id, tail(e.Log.String(), 3000))
		}
	}
}

func TestASkilljarFailureWhileStartingARunIsShownAsTheUpstreamsFault(t *testing.T) {
	t.Parallel()
	e := setup(t, 10)
	e.post(t, "/settings", validForm(e)).requireRedirect(t, "/?saved=1")
	// More failures than any client here retries: the domain check cannot get through.
	e.Skilljar.InjectFault(skilljarsim.Fault{PathPrefix: "/v1/domains", Kind: skilljarsim.Fault5xx, Times: 100})
	p := e.post(t, "/backfills", url.Values{}).requireStatus(t, http.StatusBadGateway)
	p.requireContains(t, "Skilljar could not be asked; try again shortly")
	if runs, err := e.Engine.List(e.Ctx, 10); err != nil || len(runs) != 0 {
		t.Fatalf("a refused start created runs: %d (%v)", len(runs), err)
	}
}
