package pipeline_test

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/salesforcesim"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
)

// An org with master-detail relationships, an auto-numbered Name and none of the unconfirmed
// optional fields takes a whole backfill: the plan lists what the run adapted, the activity
// log says it, and Salesforce ends equal to the source in every field the org has.
func TestFullRunOnAnAdaptedOrgEndsExactAndListsItsAdaptations(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{runstore.SinkCollections, runstore.SinkBulk} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rec := &createOnlyRecorder{}
			e := setup(t, options{
				skilljar: skilljarsim.Config{Users: 150},
				salesforce: salesforcesim.Config{Profiles: []string{
					salesforcesim.ProfileMasterDetail, salesforcesim.ProfileAutoNumber, salesforcesim.ProfileSparse}},
				wrapSink: func(s pipeline.Sink) pipeline.Sink { rec.Sink = s; return rec },
			})
			e.startWorker(t)
			run := e.wait(t, e.start(t, runstore.Scope{SinkMode: mode}).ID, 60*time.Second)
			e.requireExact(t, run)
			if run.Plan == nil || len(run.Plan.Adaptations) != 8 {
				t.Fatalf("plan adaptations = %+v, want the 8 preflight finds", run.Plan)
			}
			events, err := e.store.Events(e.ctx, run.ID, 100)
			if err != nil {
				t.Fatal(err)
			}
			adapted := 0
			for _, ev := range events {
				if ev.Kind == "adapted" {
					adapted++
				}
			}
			if adapted != 8 {
				t.Errorf("%d adapted events in the activity log, want 8", adapted)
			}
			for _, r := range e.sf.Records("skilljar__Course_Progress__c") {
				if name, _ := r["Name"].(string); !strings.HasPrefix(name, "CP-") {
					t.Fatalf("Course Progress Name %q, want the org's auto-number", name)
				}
			}
			want := map[string][]string{
				"skilljar__Course_Progress__c":  {"skilljar__Student__c"},
				"skilljar__Published_Course__c": {"skilljar__Course__c"},
			}
			if got := rec.got(); !reflect.DeepEqual(got, want) {
				t.Fatalf("the sink was told create-only fields %v, want %v", got, want)
			}
		})
	}
}

// createOnlyRecorder is a sink that records the create-only fields it is told.
type createOnlyRecorder struct {
	pipeline.Sink
	mu     sync.Mutex
	fields map[string][]string
}

func (r *createOnlyRecorder) SetCreateOnly(sobject string, fields ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fields == nil {
		r.fields = map[string][]string{}
	}
	r.fields[sobject] = fields
}

func (r *createOnlyRecorder) got() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fields
}
