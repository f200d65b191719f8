package skilljar_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/skilljar"
	"github.com/sjbackfill/backfill/internal/upstream"
)

func TestSkilljarsFailuresAreMarkedAsUpstreamAndTheCallersOwnAreNot(t *testing.T) {
	t.Parallel()
	sim := startSim(t, skilljarsim.Config{Users: 5})
	c := simClient(t, sim, skilljar.Config{MaxRetries: 1})
	faults := map[string]skilljarsim.Fault{
		"5xx after retries": {Kind: skilljarsim.Fault5xx, Times: 2},
		"garbled body":      {Kind: skilljarsim.FaultGarbled, Times: 2},
		"refused key":       {},
	}
	for name, f := range faults {
		var err error
		if f.Kind == 0 {
			_, err = simClient(t, sim, skilljar.Config{APIKey: "wrong"}).Domains(context.Background())
		} else {
			f.PathPrefix = "/v1/domains"
			sim.InjectFault(f)
			_, err = c.Domains(context.Background())
		}
		ue, ok := errors.AsType[*upstream.Error](err)
		if !ok || ue.Service != upstream.Skilljar {
			t.Fatalf("%s: %v (%T) is not an upstream failure of Skilljar", name, err, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Domains(ctx); err == nil || errors.As(err, new(*upstream.Error)) {
		t.Fatalf("a cancelled call: %v; want an error of the caller's, not Skilljar's", err)
	}
}
