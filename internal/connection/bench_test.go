package connection_test

import (
	"sync"
	"testing"

	"github.com/sjbackfill/backfill/internal/connection"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// BenchmarkStaleTokenStampede measures what one expired session costs two processes of
// eight goroutines each, all refreshing the same stale token at once: the wall time until
// every caller holds the new token, and the token requests it took (the lock makes it one).
func BenchmarkStaleTokenStampede(b *testing.B) {
	e := newEnv(b, salesforcesim.Config{}, connection.OAuthConfig{})
	e.connect()
	processes := []*connection.Source{e.newSource(connection.SourceConfig{}), e.newSource(connection.SourceConfig{})}
	before := e.sim.AuthStats().Refreshes
	b.ResetTimer()
	for b.Loop() {
		stale, err := processes[0].Token(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if _, err := processes[i%2].Refresh(e.ctx, stale); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(e.sim.AuthStats().Refreshes-before)/float64(b.N), "token_requests/op")
}
