package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sjbackfill/backfill/internal/runstore"
)

var (
	recordsDesc = prometheus.NewDesc("backfill_records_total",
		"Source records by object and outcome, counted from the runs' counters since this process started: "+
			"read, and what became of them: written (= created + updated), skipped (of which unchanged), rejected, filtered.",
		[]string{"object", "outcome"}, nil)
	activeRunsDesc = prometheus.NewDesc("backfill_runs_active",
		"Runs that are not finished, by state, among the newest runs read.", []string{"state"}, nil)
	progressDoneDesc = prometheus.NewDesc("backfill_run_progress_done",
		"Learners an active run has processed.", []string{"run", "kind"}, nil)
	progressTotalDesc = prometheus.NewDesc("backfill_run_progress_total",
		"Learners an active run will process; 0 until its plan is made.", []string{"run", "kind"}, nil)
	checkpointAgeDesc = prometheus.NewDesc("backfill_run_checkpoint_age_seconds",
		"Time since a running run's checkpoint last moved (since it started, before its first checkpoint). "+
			"A value that keeps growing means the run is stuck.", []string{"run", "kind"}, nil)
)

// activeStates are reported even when no run is in them, so an alert on a state can tell "none"
// from "not scraped".
var activeStates = []runstore.State{runstore.Queued, runstore.Running, runstore.Paused, runstore.WaitingForAuth}

// outcomes name the fields of runstore.Counters as the records series labels them.
var outcomes = []struct {
	name string
	of   func(runstore.Counters) int64
}{
	{"read", func(c runstore.Counters) int64 { return c.Read }},
	{"written", func(c runstore.Counters) int64 { return c.Written }},
	{"created", func(c runstore.Counters) int64 { return c.Created }},
	{"updated", func(c runstore.Counters) int64 { return c.Updated }},
	{"skipped", func(c runstore.Counters) int64 { return c.Skipped }},
	{"unchanged", func(c runstore.Counters) int64 { return c.Unchanged }},
	{"rejected", func(c runstore.Counters) int64 { return c.Rejected }},
	{"filtered", func(c runstore.Counters) int64 { return c.Filtered }},
}

// runCollector reads the newest runs at scrape time. Per-run series exist only for runs that
// are not finished, so their number stays bounded by the runs in flight.
//
// A run's counters only grow, but summing them over the runs a scrape can see would not:
// runs drop out of the newest-N window. So the records counter adds what each run's
// counters grew by since the previous scrape. Runs already present at the first scrape are
// its baseline and add nothing, like any counter of a process that has just started.
type runCollector struct {
	cfg Config

	mu     sync.Mutex
	primed bool
	seen   map[string]map[string]runstore.Counters // run id → object → counters at the last scrape
	totals map[[2]string]float64                   // {object, outcome} → records since start
}

func newRunCollector(cfg Config) *runCollector {
	return &runCollector{cfg: cfg, seen: map[string]map[string]runstore.Counters{}, totals: map[[2]string]float64{}}
}

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{recordsDesc, activeRunsDesc, progressDoneDesc, progressTotalDesc, checkpointAgeDesc} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ScrapeTimeout)
	defer cancel()
	runs, err := c.cfg.Runs.List(ctx, c.cfg.RecentRuns)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(recordsDesc, fmt.Errorf("list runs: %w", err))
		return
	}
	for key, v := range c.tally(runs) {
		ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.CounterValue, v, key[0], key[1])
	}

	now := c.cfg.Now()
	byState := map[runstore.State]int{}
	for _, r := range runs {
		if r.State.Terminal() {
			continue
		}
		byState[r.State]++
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.ID, string(r.Kind))
		}
		gauge(progressDoneDesc, float64(r.Progress.Done))
		gauge(progressTotalDesc, float64(r.Progress.Total))
		if r.State == runstore.Running {
			gauge(checkpointAgeDesc, max(0, now.Sub(lastProgress(r)).Seconds()))
		}
	}
	for _, st := range activeStates {
		ch <- prometheus.MustNewConstMetric(activeRunsDesc, prometheus.GaugeValue, float64(byState[st]), string(st))
	}
}

// lastProgress is when the run last showed progress: its last checkpoint, or its start.
func lastProgress(r *runstore.Run) time.Time {
	switch {
	case r.CheckpointAt != nil:
		return *r.CheckpointAt
	case r.StartedAt != nil:
		return *r.StartedAt
	}
	return r.CreatedAt
}

// tally adds the runs' counter growth to the totals and returns a copy of them.
func (c *runCollector) tally(runs []*runstore.Run) map[[2]string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]map[string]runstore.Counters, len(runs))
	for _, r := range runs {
		prev, known := c.seen[r.ID]
		if !known && !c.primed {
			prev = r.Counters
		}
		for object, now := range r.Counters {
			before := prev[object]
			for _, o := range outcomes {
				if grew := o.of(now) - o.of(before); grew > 0 {
					c.totals[[2]string{object, o.name}] += float64(grew)
				}
			}
		}
		seen[r.ID] = r.Counters
	}
	c.seen, c.primed = seen, true
	out := make(map[[2]string]float64, len(c.totals))
	for k, v := range c.totals {
		out[k] = v
	}
	return out
}
