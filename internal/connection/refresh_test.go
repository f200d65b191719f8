package connection_test

import (
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/clock"
	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

func TestRefreshAfterRefreshesOnceTheTokenIsThatOldAndNotBefore(t *testing.T) {
	e := newEnv(t, salesforcesim.Config{}, connection.OAuthConfig{})
	issued := e.connect().IssuedAt
	if issued.IsZero() {
		t.Fatal("the grant has no issue time: RefreshAfter would have nothing to count from")
	}
	now := clock.NewManual(issued)
	src := e.newSource(connection.SourceConfig{RefreshAfter: time.Hour, Now: now.Now})
	refreshes := func() int { return e.sim.AuthStats().Refreshes }
	before := refreshes()

	now.Advance(time.Hour - time.Second)
	first, err := src.Token(e.ctx)
	if err != nil || refreshes() != before {
		t.Fatalf("a token younger than RefreshAfter: %v, %d refreshes; want it used as it is", err, refreshes()-before)
	}
	now.Advance(time.Second)
	second, err := src.Token(e.ctx)
	if err != nil || refreshes() != before+1 || second.AccessToken == first.AccessToken {
		t.Fatalf("a token RefreshAfter old: %v, %d refreshes, new token %v; want one refresh", err, refreshes()-before, second.AccessToken != first.AccessToken)
	}
	e.rememberGrant()
}
