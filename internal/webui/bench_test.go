package webui_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// BenchmarkPages measures what an open page costs the server, over HTTP with Basic auth,
// with 20 runs in the table: the full page (which also lists Skilljar's domains) and the
// runs table every open tab fetches each RefreshInterval.
func BenchmarkPages(b *testing.B) {
	e := setup(b, 40)
	for i := range 20 {
		m := runstore.Meta{ID: runstore.NewID(time.Now(), uint32(i)), Kind: runstore.KindBackfill, Trigger: "bench",
			Scope: runstore.Scope{Domains: []string{fmt.Sprintf("d%d.example.com", i)}}, CreatedAt: time.Now()}
		if _, _, err := e.Store.Create(e.Ctx, m, ""); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, path string }{{"index", "/"}, {"runs-table", "/live/runs"}} {
		path := tc.path
		b.Run(tc.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				p := e.get(b, path).requireStatus(b, http.StatusOK)
				size = len(p.body)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/request")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
