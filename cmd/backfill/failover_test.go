package main

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sjbackfill/backfill/internal/pipeline"
	"github.com/sjbackfill/backfill/internal/redistest"
	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/sim/simcheck"
	"github.com/sjbackfill/backfill/internal/sim/skilljarsim"
	"github.com/sjbackfill/backfill/internal/stacktest"
)

// Replication is asynchronous, so the replica Sentinel promotes may lack the primary's last
// writes: the run's newest checkpoints among them. Workers that follow the new primary
// through REDIS_URL=redis-sentinel://… must then replay from the older checkpoint it holds,
// and the run must still end exact: written again, never skipped.
func TestWorkersFollowASentinelFailoverAndReplayWhatThePromotedReplicaLacks(t *testing.T) {
	t.Parallel()
	f := redistest.StartFailover(t)
	s := newStackWith(t, stacktest.Options{Skilljar: skilljarsim.Config{Users: 800, Seed: 8}, External: &stacktest.ExternalRedis{
		URL: f.URL(), Client: f.Client(t),
		Conn: asynq.RedisFailoverClientOpt{MasterName: redistest.MasterName, SentinelAddrs: f.SentinelAddrs()},
	}})
	if !strings.HasPrefix(s.RedisURL, "redis-sentinel://") {
		t.Fatalf("REDIS_URL %s does not go through the sentinels", s.RedisURL)
	}
	env := s.env("SKILLJAR_RATE_LIMIT=100/1s", "BACKFILL_SLICE_SECONDS=2")
	startProcess(t, env, "worker")
	startProcess(t, env, "worker")
	run, _, err := s.Engine.Start(s.Ctx, pipeline.StartRequest{Scope: runstore.Scope{SinkMode: runstore.SinkCollections}, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitFor(t, run.ID, 90*time.Second, "a quarter of the learners done", func(r *runstore.Run) bool {
		return r.Progress.Total > 0 && r.Progress.Done*4 >= r.Progress.Total
	})

	// Cut the replica off: frozen, it reads nothing, and a 32 MB value written first fills
	// the link, so nothing the run writes after it reaches the replica before the primary dies.
	onPrimary := runstore.New(f.Primary.Client(t), runstore.Options{})
	f.Replica.Freeze(t)
	if err := f.Primary.Client(t).Set(s.Ctx, "filler", strings.Repeat("x", 32<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	frozenAt, err := onPrimary.Get(s.Ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	last := frozenAt
	for last.Seq < frozenAt.Seq+2 || last.Progress.Done == frozenAt.Progress.Done {
		if time.Now().After(deadline) {
			t.Fatalf("the run did not move on while the replica was frozen: slice %d, %d done", last.Seq, last.Progress.Done)
		}
		time.Sleep(50 * time.Millisecond)
		if last, err = onPrimary.Get(s.Ctx, run.ID); err != nil {
			t.Fatal(err)
		}
	}
	writesBefore := len(s.Salesforce.WriteLog())
	f.Primary.Stop() // SIGKILL: what the replica has not read is gone
	f.Replica.Thaw(t)
	f.WaitPrimary(t, f.Replica.Addr, 60*time.Second)

	promoted, err := runstore.New(f.Replica.Client(t), runstore.Options{}).Get(s.Ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if promoted.Seq >= last.Seq || promoted.Progress.Done >= last.Progress.Done {
		t.Fatalf("the promoted replica holds slice %d with %d learners done, the lost primary had %d with %d: it lacks nothing, so this proves nothing",
			promoted.Seq, promoted.Progress.Done, last.Seq, last.Progress.Done)
	}
	t.Logf("the promoted replica holds slice %d (%d learners done); the killed primary had reached slice %d (%d done)",
		promoted.Seq, promoted.Progress.Done, last.Seq, last.Progress.Done)

	// asynq hands the task the replica remembers as active to a worker after its lease
	// lapses and a recoverer pass, about one to two minutes.
	run = s.WaitFor(t, run.ID, 4*time.Minute, "the run to end", func(r *runstore.Run) bool { return r.State.Terminal() })
	s.requireExact(t, run)
	replayed := 0
	seen := map[string]bool{}
	for i, w := range s.Salesforce.WriteLog() {
		k := w.SObject + "/" + w.ExternalID
		if seen[k] && i >= writesBefore {
			replayed++
		}
		seen[k] = true
	}
	if replayed == 0 {
		t.Fatalf("no record was written again after the failover, yet the promoted replica's checkpoint is older than the last one")
	}
	t.Logf("records written again after the failover: %d (replays in all: %d)", replayed, simcheck.Replays(s.Salesforce))
}
