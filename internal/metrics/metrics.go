// Package metrics holds Kiln's Prometheus metrics: one registry per server
// (no global default registry), the collectors the areas feed, the HTTP
// instrumentation and the /metrics handler with its address allowlist.
package metrics

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the registry and the collectors Kiln's areas feed. Its methods
// are safe for concurrent use; a nil *Metrics ignores every event.
type Metrics struct {
	Registry *prometheus.Registry

	triggerRequests   *prometheus.CounterVec
	pipelinesCreated  *prometheus.CounterVec
	pipelinesFinished *prometheus.CounterVec
	jobsFinished      *prometheus.CounterVec
	jobDuration       prometheus.Histogram
	jobQueue          prometheus.Histogram
	httpDuration      *prometheus.HistogramVec
}

// jobBuckets spans CI jobs: a second to a few hours.
var jobBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// queueBuckets spans the wait for a runner: milliseconds (a long-polling
// runner takes a job at once) to an hour (no runner).
var queueBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// New creates a registry with the Go runtime and process collectors and
// Kiln's own metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		triggerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_trigger_requests_total",
			Help: "Calls to the trigger API by outcome: created, or the class of refusal (bad_request, unauthorized, forbidden, not_found, too_large, rate_limited, error).",
		}, []string{"result"}),
		pipelinesCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_pipelines_created_total",
			Help: "Pipelines created, by source (push, web, api, trigger, schedule, pipeline, parent_pipeline).",
		}, []string{"source"}),
		pipelinesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_pipelines_finished_total",
			Help: "Pipelines that reached a completed status, by status.",
		}, []string{"status"}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_jobs_finished_total",
			Help: "Build jobs that ran on a runner and ended, by final status.",
		}, []string{"status"}),
		jobDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiln_job_duration_seconds",
			Help:    "Run time (running to finished) of build jobs that ran on a runner.",
			Buckets: jobBuckets,
		}),
		jobQueue: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiln_job_queue_seconds",
			Help:    "Time build jobs waited for a runner (pending to running); observed when the job ends.",
			Buckets: queueBuckets,
		}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern and status code (runner job requests long-poll).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.triggerRequests, m.pipelinesCreated, m.pipelinesFinished, m.jobsFinished,
		m.jobDuration, m.jobQueue, m.httpDuration,
	)
	// Show the usual results at zero before the first event.
	for _, r := range []string{"created", "not_found", "bad_request"} {
		m.triggerRequests.WithLabelValues(r)
	}
	for _, s := range []string{"success", "failed", "canceled"} {
		m.pipelinesFinished.WithLabelValues(s)
		m.jobsFinished.WithLabelValues(s)
	}
	return m
}

// TriggerResult counts one trigger API call answered with HTTP status code.
func (m *Metrics) TriggerResult(code int) {
	if m == nil {
		return
	}
	m.triggerRequests.WithLabelValues(TriggerResultClass(code)).Inc()
}

// TriggerResultClass names the outcome of a trigger call from its status.
func TriggerResultClass(code int) string {
	switch {
	case code == http.StatusCreated || code == http.StatusOK:
		return "created"
	case code == http.StatusBadRequest:
		return "bad_request"
	case code == http.StatusUnauthorized:
		return "unauthorized"
	case code == http.StatusForbidden:
		return "forbidden"
	case code == http.StatusNotFound:
		return "not_found"
	case code == http.StatusRequestEntityTooLarge:
		return "too_large"
	case code == http.StatusTooManyRequests:
		return "rate_limited"
	case code >= 500:
		return "error"
	}
	return "refused_other"
}

// PipelineCreated counts a new pipeline.
func (m *Metrics) PipelineCreated(source string) {
	if m == nil {
		return
	}
	m.pipelinesCreated.WithLabelValues(source).Inc()
}

// PipelineFinished counts a pipeline that reached a completed status.
func (m *Metrics) PipelineFinished(status string) {
	if m == nil {
		return
	}
	m.pipelinesFinished.WithLabelValues(status).Inc()
}

// JobFinished counts a build job that ran and ended; queued and ran are its
// pending→running and running→finished times (negative: unknown).
func (m *Metrics) JobFinished(status string, queued, ran time.Duration) {
	if m == nil {
		return
	}
	m.jobsFinished.WithLabelValues(status).Inc()
	if ran >= 0 {
		m.jobDuration.Observe(ran.Seconds())
	}
	if queued >= 0 {
		m.jobQueue.Observe(queued.Seconds())
	}
}

// RegisterRunnerRequests exposes the runner protocol's job request counters:
// kiln_runner_requests_total{result="job"|"no_job"} from answered requests,
// and kiln_runners_waiting, the requests long-polling now. The functions are
// read at scrape time.
func (m *Metrics) RegisterRunnerRequests(withJob, withoutJob, waiting func() float64) {
	if m == nil {
		return
	}
	desc := "Job requests (polls) from runners that ended, by result: job (a job was handed out) or no_job."
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_runner_requests_total", Help: desc, ConstLabels: prometheus.Labels{"result": "job"}}, withJob),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_runner_requests_total", Help: desc, ConstLabels: prometheus.Labels{"result": "no_job"}}, withoutJob),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kiln_runners_waiting", Help: "Runner job requests long-polling right now."}, waiting),
	)
}

// RegisterPendingJobs exposes kiln_jobs_pending, the queue depth, from
// count. Scrapes within ttl of the last count reuse it, so that frequent or
// concurrent scrapes cost at most one query per ttl.
func (m *Metrics) RegisterPendingJobs(count func(ctx context.Context) (int64, error), ttl time.Duration) {
	if m == nil {
		return
	}
	c := &cachedCount{count: count, ttl: ttl}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kiln_jobs_pending",
		Help: "Build jobs waiting for a runner (queue depth), refreshed at most every " + ttl.String() + ".",
	}, c.get))
}

type cachedCount struct {
	count func(ctx context.Context) (int64, error)
	ttl   time.Duration
	mu    sync.Mutex
	at    time.Time
	val   float64
}

func (c *cachedCount) get() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.val
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := c.count(ctx); err == nil {
		c.val = float64(n)
	}
	// A failed count keeps the last value and is retried after ttl, so a
	// slow database is not hit by every scrape.
	c.at = time.Now()
	return c.val
}

// Handler serves the registry in Prometheus' exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, MaxRequestsInFlight: 4})
}

// Instrument measures each request's duration under its route pattern (set
// by http.ServeMux on the request as it routes it, also by nested muxes that
// receive the same request). Requests matching no pattern are "unmatched";
// label fn, if set, may rename a pattern (e.g. "/" into "git" or "web").
func (m *Metrics) Instrument(next http.Handler, label func(r *http.Request) string) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if label != nil {
				route = label(r)
			}
			if route == "" {
				route = "unmatched"
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.httpDuration.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status code; Unwrap keeps http.ResponseController
// (flushes of streamed logs and events, deadlines) working.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ParseAllowList reads a comma-separated list of CIDRs or single addresses.
// An empty list allows nobody.
func ParseAllowList(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip := net.ParseIP(f)
			if ip == nil {
				return nil, &net.ParseError{Type: "IP address", Text: f}
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Allow serves next only to clients whose address (the TCP peer: a
// forwarded-for header is not trusted) is in allow, and answers 404 to
// others, as GitLab does for /-/metrics.
func Allow(allow []*net.IPNet, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip := net.ParseIP(host)
		for _, n := range allow {
			if ip != nil && n.Contains(ip) {
				next.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	})
}
