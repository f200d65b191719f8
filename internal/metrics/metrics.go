// Package metrics exports the backfill's Prometheus metrics from a registry of its own: asynq's
// queue series, records by object and outcome, run progress and checkpoint age, Skilljar and
// Salesforce calls, rate-limit waits and the Salesforce API budget.
package metrics

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/sjbackfill/backfill/internal/runstore"
	"github.com/sjbackfill/backfill/internal/salesforce"
	"github.com/sjbackfill/backfill/internal/skilljar"
)

// RunLister lists the most recent runs, newest first; *runstore.Store is one.
type RunLister interface {
	List(ctx context.Context, limit int) ([]*runstore.Run, error)
}

// QueueInspector reads asynq's queues; *asynq.Inspector is one.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// Config says what a process exports.
//
// Queues and Runs read Redis, which every process shares: set them in one role (the api) so
// the same numbers are not exported once per process. The call observers count what their
// own process does, so every process that calls Skilljar or Salesforce exports them.
type Config struct {
	// Queues, when set, exports asynq's queue series (asynq_queue_size and the rest).
	Queues QueueInspector
	// Runs, when set, exports records by object and outcome, active runs, run progress and
	// checkpoint age.
	Runs RunLister
	// RecentRuns is how many of the newest runs a scrape reads. Defaults to 50.
	RecentRuns int
	// ScrapeTimeout bounds the Redis reads of one scrape. Defaults to 5s.
	ScrapeTimeout time.Duration
	// Logger gets the errors of scrapes that could not read Redis.
	Logger zerolog.Logger
	// Now is the clock for checkpoint ages. Defaults to time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.RecentRuns = cmp.Or(c.RecentRuns, 50)
	c.ScrapeTimeout = cmp.Or(c.ScrapeTimeout, 5*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Metrics is one process's registry and the observers that feed it.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	source  *SourceObserver
	sink    *SinkObserver
}

// New registers the process's collectors and those Config asks for.
func New(cfg Config) *Metrics {
	cfg = cfg.withDefaults()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Queues != nil {
		reg.MustRegister(&queueCollector{inspect: cfg.Queues})
	}
	if cfg.Runs != nil {
		reg.MustRegister(newRunCollector(cfg))
	}
	m := &Metrics{reg: reg, source: newSourceObserver(reg), sink: newSinkObserver(reg)}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// One series that cannot be read (Redis down) must not hide the others.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      errorLog{cfg.Logger},
		Registry:      reg,
	})
	return m
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Source is the observer for skilljar.Config.Observer.
func (m *Metrics) Source() *SourceObserver { return m.source }

// Sink is the observer for salesforce.Config.Observer.
func (m *Metrics) Sink() *SinkObserver { return m.sink }

// callBuckets span a fast API answer to a Salesforce upsert held up by triggers.
var callBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// SourceObserver counts Skilljar calls and rate-limit waits. It implements skilljar.Observer.
type SourceObserver struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	waits    prometheus.Histogram
}

var _ skilljar.Observer = (*SourceObserver)(nil)

func newSourceObserver(reg prometheus.Registerer) *SourceObserver {
	o := &SourceObserver{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_skilljar_requests_total",
			Help: "Skilljar API attempts by endpoint and HTTP status (none: no answer arrived).",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backfill_skilljar_request_duration_seconds", Buckets: callBuckets,
			Help: "Skilljar API attempt durations by endpoint.",
		}, []string{"endpoint"}),
		waits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "backfill_skilljar_rate_limit_wait_seconds",
			Help: "Time each Skilljar attempt waited for the shared rate limit (zero when none).",
			// From no wait at all to the minutes an exhausted hourly budget can hold callers.
			Buckets: []float64{0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900},
		}),
	}
	reg.MustRegister(o.calls, o.duration, o.waits)
	return o
}

// Call counts one Skilljar attempt.
func (o *SourceObserver) Call(endpoint string, status int, d time.Duration) {
	o.calls.WithLabelValues(endpoint, statusLabel(status)).Inc()
	o.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Waited records one wait for the rate limiter.
func (o *SourceObserver) Waited(d time.Duration) { o.waits.Observe(d.Seconds()) }

// SinkObserver counts Salesforce calls and keeps the org's API budget. It implements
// salesforce.Observer.
type SinkObserver struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// The budget gauges are vectors without labels so that they are absent, not zero, until
	// a Salesforce answer has reported the budget: zero would read as "none left".
	used, max, remaining *prometheus.GaugeVec
}

var _ salesforce.Observer = (*SinkObserver)(nil)

func newSinkObserver(reg prometheus.Registerer) *SinkObserver {
	o := &SinkObserver{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backfill_salesforce_requests_total",
			Help: "Salesforce API attempts by endpoint and HTTP status (none: no answer arrived).",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backfill_salesforce_request_duration_seconds", Buckets: callBuckets,
			Help: "Salesforce API attempt durations by endpoint.",
		}, []string{"endpoint"}),
		used: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_salesforce_api_requests_used",
			Help: "The org's API requests used in the last 24 hours, from the last Sforce-Limit-Info header this process saw.",
		}, nil),
		max: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_salesforce_api_requests_max",
			Help: "The org's daily API request allocation, from the last Sforce-Limit-Info header this process saw.",
		}, nil),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backfill_salesforce_api_requests_remaining",
			Help: "The org's API requests left in the last 24 hours' allocation (max - used).",
		}, nil),
	}
	reg.MustRegister(o.calls, o.duration, o.used, o.max, o.remaining)
	return o
}

// ObserveCall counts one Salesforce attempt.
func (o *SinkObserver) ObserveCall(endpoint string, status int, d time.Duration) {
	o.calls.WithLabelValues(endpoint, statusLabel(status)).Inc()
	o.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// ObserveUsage keeps the org's API usage.
func (o *SinkObserver) ObserveUsage(used, max int) {
	o.used.WithLabelValues().Set(float64(used))
	o.max.WithLabelValues().Set(float64(max))
	o.remaining.WithLabelValues().Set(float64(max - used))
}

func statusLabel(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status)
}

// errorLog hands promhttp's scrape errors to the logger.
type errorLog struct{ log zerolog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn().Msg("metrics scrape: " + fmt.Sprint(v...)) }
