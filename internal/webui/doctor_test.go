package webui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestTestConnectionsListsEveryCheckFineOnACleanConnectedOrg(t *testing.T) {
	t.Parallel()
	e := setup(t, 5)
	e.ConnectSalesforce(t)
	p := e.post(t, "/doctor", nil).requireStatus(t, http.StatusOK)
	p.requireContains(t, `id="doctor-report"`, "Nothing blocks a backfill.", `data-check="skilljar_key"`, `data-check="mapping"`, `data-check="salesforce_budget"`)
	if strings.Contains(p.body, `data-status="blocking"`) || strings.Contains(p.body, `data-status="adapted"`) {
		t.Fatalf("a clean org should be all fine:\n%s", p.text())
	}
}

func TestABlockingMappingShowsItsFixAndTheBackfillButtonIsRefusedWith422(t *testing.T) {
	t.Parallel()
	e := setupOrg(t, 5, salesforcesim.Config{Profiles: []string{salesforcesim.ProfilePicklist}})
	e.ConnectSalesforce(t)
	p := e.post(t, "/doctor", nil).requireStatus(t, http.StatusOK)
	p.requireContains(t, `data-status="blocking"`, "skilljar__Success_Status__c", `"value_map": {`)

	before := e.Enqueued(t)
	b := e.post(t, "/backfills", nil).requireStatus(t, http.StatusUnprocessableEntity)
	b.requireContains(t, "The run was not started", "skilljar__Success_Status__c", `"value_map"`)
	if got := e.Enqueued(t); got != before {
		t.Fatalf("a refused Backfill enqueued %d task(s)", got-before)
	}
}

func TestTheConnectionBlockShowsWhenAnUnusedGrantWouldLapse(t *testing.T) {
	t.Parallel()
	e := setup(t, 5)
	e.ConnectSalesforce(t)
	st, err := e.Connection.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := st.LastUse().Add(connection.DefaultIdleLimit).UTC().Format("2006-01-02 15:04:05 UTC")
	if !st.LastUse().Add(connection.DefaultIdleLimit).After(time.Now().Add(29 * 24 * time.Hour)) {
		t.Fatalf("a grant connected just now should lapse about 30 days on, not %s", want)
	}
	e.get(t, "/").requireStatus(t, http.StatusOK).requireContains(t, `id="auth-lapse">`+want)
}
