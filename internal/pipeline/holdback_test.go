package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
)

// sentSink records the external ids of every row sent to Salesforce, per sObject.
type sentSink struct {
	pipeline.Sink
	mu   sync.Mutex
	sent map[string]map[string]bool
}

func (s *sentSink) record(sobject, ext string, recs []salesforce.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent[sobject] == nil {
		s.sent[sobject] = map[string]bool{}
	}
	for _, r := range recs {
		id, _ := r[ext].(string)
		s.sent[sobject][id] = true
	}
}

func (s *sentSink) Upsert(ctx context.Context, sobject, ext string, recs []salesforce.Record) ([]salesforce.Result, error) {
	s.record(sobject, ext, recs)
	return s.Sink.Upsert(ctx, sobject, ext, recs)
}

func (s *sentSink) BulkUpsert(ctx context.Context, sobject, ext string, recs []salesforce.Record) ([]salesforce.Result, error) {
	s.record(sobject, ext, recs)
	return s.Sink.BulkUpsert(ctx, sobject, ext, recs)
}

func TestARejectedStudentsProgressIsHeldBackAndARetryWritesItOnceTheStudentLands(t *testing.T) {
	t.Parallel()
	sink := &sentSink{sent: map[string]map[string]bool{}}
	e := setup(t, options{wrapSink: func(s pipeline.Sink) pipeline.Sink { sink.Sink = s; return sink }})
	org := e.sj.Org()
	victim := org.Learners[3]
	progress := org.ProgressOf(victim.ID)
	if len(progress) == 0 {
		t.Fatal("the victim has no progress: the test proves nothing")
	}
	// A validation rule refuses the student once; the retry finds it fixed.
	e.sf.InjectRecordError("skilljar__Student__c", victim.ID, "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1)
	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections}).ID, 60*time.Second)
	if run.State != runstore.Succeeded || run.Summary.Verdict != "mismatch" {
		t.Fatalf("run: %s, summary %+v", run.State, run.Summary)
	}
	ledger, total, err := e.store.RejectedPage(e.ctx, run.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, r := range ledger {
		switch {
		case r.Object == "student" && r.Code != "FIELD_CUSTOM_VALIDATION_EXCEPTION":
			t.Errorf("student in the ledger with %s, want the validation error: %+v", r.Code, r)
		case r.Object == "course_progress" && r.Code != pipeline.CodeWaitingForParent:
			t.Errorf("progress in the ledger with %s, want %s: %+v", r.Code, pipeline.CodeWaitingForParent, r)
		case r.Object == "course_progress":
			if !strings.Contains(r.Message, victim.ID) || !strings.Contains(string(r.Row), victim.ID) {
				t.Errorf("a held-back row must name its parent %s: %+v", victim.ID, r)
			}
			held[r.ExternalID] = true
		}
	}
	for _, p := range progress {
		if !held[p.CourseProgressID] {
			t.Errorf("progress %s of the rejected student is not held back", p.CourseProgressID)
		}
	}
	for ext := range held {
		if sink.sent["skilljar__Course_Progress__c"][ext] {
			t.Errorf("held-back progress %s was sent to Salesforce", ext)
		}
	}
	if c := run.Counters["course_progress"]; c.Rejected != int64(len(held)) || !c.Balanced() {
		t.Errorf("progress counters %+v; want the %d held-back rows rejected", c, len(held))
	}

	retry, err := e.engine.RetryRejected(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	retry = e.wait(t, retry.ID, 60*time.Second)
	if got := retry.Total(); got.Rejected != 0 || got.Written != total {
		t.Fatalf("retry counters %+v; want all %d ledger rows written", got, total)
	}
	if rep := simcheck.Compare(e.sj.Org(), e.sf); !rep.Exact() {
		t.Fatalf("after the retry Salesforce still differs:\n%s", rep)
	}
}

func TestARetryHoldsBackChildrenAgainWhileTheirParentIsStillRejected(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	victim := e.sj.Org().Learners[5]
	// Refused in the run and again in its first retry.
	e.sf.InjectRecordError("skilljar__Student__c", victim.ID, "FIELD_CUSTOM_VALIDATION_EXCEPTION", 2)
	e.startWorker(t)
	run := e.wait(t, e.start(t, runstore.Scope{SinkMode: runstore.SinkCollections}).ID, 60*time.Second)
	first, err := e.engine.RetryRejected(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	first = e.wait(t, first.ID, 60*time.Second)
	ledger, _, err := e.store.RejectedPage(e.ctx, first.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if c := first.Counters["course_progress"]; c.Rejected == 0 || c.Written != 0 {
		t.Fatalf("first retry progress counters %+v; want every row held back again", c)
	}
	for _, r := range ledger {
		if r.Object == "course_progress" && r.Code != pipeline.CodeWaitingForParent {
			t.Errorf("first retry sent progress whose parent it could not land: %+v", r)
		}
	}
	second, err := e.engine.RetryRejected(e.ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	second = e.wait(t, second.ID, 60*time.Second)
	if got := second.Total(); got.Rejected != 0 {
		t.Fatalf("second retry counters %+v; want nothing rejected", got)
	}
	if rep := simcheck.Compare(e.sj.Org(), e.sf); !rep.Exact() {
		t.Fatalf("after the second retry Salesforce still differs:\n%s", rep)
	}
}
