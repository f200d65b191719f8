package connection_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

const day = 24 * time.Hour

func TestAnIdleGrantIsRefreshedBeforeTheSimulatorsIdleLimitAndLivesOn(t *testing.T) {
	now := clock.NewManual(time.Now())
	e := newEnv(t, salesforcesim.Config{RefreshIdle: 30 * day, Now: now.Now}, connection.OAuthConfig{})
	e.connect()
	src := e.newSource(connection.SourceConfig{Now: now.Now})
	refreshes := func() int { return e.sim.AuthStats().Refreshes }
	before := refreshes()

	now.Advance(6 * day)
	if did, err := src.RefreshIdle(e.ctx, 7*day); did || err != nil || refreshes() != before {
		t.Fatalf("a grant used 6 days ago: refreshed %v, %v; want it left alone", did, err)
	}
	now.Advance(2 * day)
	if did, err := src.RefreshIdle(e.ctx, 7*day); !did || err != nil || refreshes() != before+1 {
		t.Fatalf("a grant unused for 8 days: refreshed %v, %v; want one refresh", did, err)
	}
	st := e.status()
	if lapse := st.LapsesAt(30 * day); lapse == nil || !lapse.Equal(now.Now().Add(30*day).UTC()) {
		t.Fatalf("after the refresh the grant should lapse 30 days on, at %v; status says %v", now.Now().Add(30*day).UTC(), lapse)
	}
	// 33 days after connecting, past the limit had the grant sat unused since then.
	now.Advance(25 * day)
	if did, err := src.RefreshIdle(e.ctx, 7*day); !did || err != nil {
		t.Fatalf("the refreshed grant should still refresh 25 days later: refreshed %v, %v", did, err)
	}
	if st := e.status(); st.State != connection.Connected {
		t.Fatalf("state %s (%s); want connected", st.State, st.LastError)
	}
	e.rememberGrant()
}

func TestAGrantUnusedPastTheIdleLimitIsReportedAsLapsed(t *testing.T) {
	now := clock.NewManual(time.Now())
	e := newEnv(t, salesforcesim.Config{RefreshIdle: 30 * day, Now: now.Now}, connection.OAuthConfig{})
	e.connect()
	src := e.newSource(connection.SourceConfig{Now: now.Now})

	now.Advance(31 * day)
	did, err := src.RefreshIdle(e.ctx, 7*day)
	if did || !errors.Is(err, salesforce.ErrAuth) {
		t.Fatalf("a grant idle past the limit: refreshed %v, %v; want an auth error", did, err)
	}
	st := e.status()
	if st.State != connection.NeedsReauth || !strings.Contains(st.LastError, "reconnect Salesforce") {
		t.Fatalf("state %s, %q; want needs_reauth saying to reconnect", st.State, st.LastError)
	}
	if st.LapsesAt(30*day) != nil {
		t.Fatal("a lapsed grant has no lapse date ahead")
	}
}
