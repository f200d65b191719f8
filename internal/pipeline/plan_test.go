package pipeline_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/mapping"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

func streamNames(run *runstore.Run) []string {
	var out []string
	for _, st := range run.Plan.Streams {
		out = append(out, st.Name)
	}
	return out
}

// TestPlansRunTheStreamKindsInRegistryOrderWithTheMappingsParents pins the plans the stream
// kinds produce together: the snapshot before any learner, parents before children, one
// stream per domain where the API lists per domain, and a catch-up's two passes.
func TestPlansRunTheStreamKindsInRegistryOrderWithTheMappingsParents(t *testing.T) {
	t.Parallel()
	e := setup(t, options{skilljar: skilljarsim.Config{Users: 40}})
	domain := e.sj.Org().Domains[1].Name
	scope := runstore.Scope{Domains: []string{domain}, Objects: []string{mapping.CourseProgress}}
	e.startWorker(t)

	backfill := e.wait(t, e.start(t, scope).ID, 60*time.Second)
	e.requireExact(t, backfill, domain)
	want := []string{"snapshot:1", "courses", "published_courses:" + domain, "learners:" + domain, "verify:" + domain}
	if got := streamNames(backfill); !slices.Equal(got, want) {
		t.Errorf("backfill streams %v, want %v", got, want)
	}
	if !slices.Equal(backfill.Plan.Objects, mapping.Order) || len(backfill.Plan.Notes) != 1 ||
		!strings.Contains(backfill.Plan.Notes[0], "added course, published_course, student") {
		t.Errorf("asking for course progress planned objects %v with notes %q; want its parents added from the mapping", backfill.Plan.Objects, backfill.Plan.Notes)
	}
	if n := int64(len(e.sj.Org().LearnersIn(domain))); backfill.Progress.Total != n {
		t.Errorf("the plan counted %d learners; %s has %d", backfill.Progress.Total, domain, n)
	}

	catchup, err := e.engine.StartCatchup(e.ctx, scope, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	catchup = e.wait(t, catchup.ID, 60*time.Second)
	if catchup.State != runstore.Succeeded {
		t.Fatalf("catch-up ended %s: %s", catchup.State, catchup.Error)
	}
	want = []string{"snapshot:1", "courses", "published_courses:" + domain, "members:" + domain, "changed:1", "snapshot:2", "changed:2"}
	if got := streamNames(catchup); !slices.Equal(got, want) {
		t.Errorf("catch-up streams %v, want %v", got, want)
	}
}
