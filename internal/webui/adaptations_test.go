package webui_test

import (
	"net/http"
	"testing"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
)

// An org whose relationships are master-detail and whose progress Name is an auto-number
// is written to as adapted by preflight; the run page lists each adaptation with its field.
func TestRunPageListsWhatThePlanAdaptedToTheOrg(t *testing.T) {
	t.Parallel()
	e := setupOrg(t, 10, salesforcesim.Config{Profiles: []string{salesforcesim.ProfileMasterDetail, salesforcesim.ProfileAutoNumber}})
	e.StartWorker(t)
	run, _, err := e.Engine.Start(e.Ctx, pipeline.StartRequest{Scope: runstore.Scope{SinkMode: runstore.SinkCollections}, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	run = e.waitFor(t, run.ID)
	if run.Plan == nil || len(run.Plan.Adaptations) == 0 {
		t.Fatalf("the plan of a run on a master-detail, auto-numbered org lists no adaptation: %+v", run.Plan)
	}
	p := e.get(t, "/runs/"+run.ID).requireStatus(t, http.StatusOK)
	p.requireContains(t, "Adapted to this org", `id="adaptations"`)
	for _, a := range run.Plan.Adaptations {
		p.requireContains(t, `data-kind="`+a.Kind+`"`, a.SObject+"."+a.Field)
	}
}
