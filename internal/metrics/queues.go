package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Queue series keep the names and types of asynq's own exporter (github.com/hibiken/asynq/x/
// metrics), which asynqmon's charts query when PROMETHEUS_URL is set.
var (
	tasksByStateDesc = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Number of tasks in a queue, by state (a gauge, named as asynq names it).", []string{"queue", "state"}, nil)
	queueSizeDesc = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue, in every state but completed.", []string{"queue"}, nil)
	queueLatencyDesc = prometheus.NewDesc("asynq_queue_latency_seconds",
		"How long the oldest pending task of a queue has waited.", []string{"queue"}, nil)
	queueMemoryDesc = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Approximate Redis memory a queue uses (sampled by asynq).", []string{"queue"}, nil)
	processedDesc = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed (succeeded or failed) by a queue.", []string{"queue"}, nil)
	failedDesc = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks that failed in a queue.", []string{"queue"}, nil)
	pausedDesc = prometheus.NewDesc("asynq_queue_paused_total",
		"1 when the queue is paused, 0 otherwise.", []string{"queue"}, nil)
)

// queueCollector reads every queue's info through the inspector at scrape time.
type queueCollector struct {
	inspect QueueInspector
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tasksByStateDesc, queueSizeDesc, queueLatencyDesc, queueMemoryDesc, processedDesc, failedDesc, pausedDesc} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.inspect.Queues()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueSizeDesc, fmt.Errorf("list asynq queues: %w", err))
		return
	}
	for _, q := range queues {
		info, err := c.inspect.GetQueueInfo(q)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(queueSizeDesc, fmt.Errorf("read asynq queue %s: %w", q, err))
			continue
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{q}, labels...)...)
		}
		for state, n := range map[string]int{
			"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled, "retry": info.Retry,
			"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
		} {
			gauge(tasksByStateDesc, float64(n), state)
		}
		gauge(queueSizeDesc, float64(info.Size))
		gauge(queueLatencyDesc, info.Latency.Seconds())
		gauge(queueMemoryDesc, float64(info.MemoryUsage))
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(pausedDesc, paused)
		ch <- prometheus.MustNewConstMetric(processedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
	}
}
