package runnerapi

import (
	"sync"
	"sync/atomic"

	"github.com/kilnci/kiln/internal/metrics"
)

// Metrics counts runner protocol activity: job requests (polls), the ones
// that were handed a job, and those long-polling now. Register exposes them
// on a Prometheus registry as kiln_runner_requests_total{result} and
// kiln_runners_waiting.
type Metrics struct {
	polls    atomic.Int64 // requests that started waiting
	assigned atomic.Int64 // requests answered with a job
	waiting  waitGauge    // requests waiting now, and how many have ended

	mu     sync.Mutex
	noJobs float64 // highest no_job value reported (keeps the counter monotonic)
}

// NewMetrics returns Metrics registered on m (which may be nil: counting
// only).
func NewMetrics(m *metrics.Metrics) *Metrics {
	rm := &Metrics{}
	m.RegisterRunnerRequests(
		func() float64 { return float64(rm.assigned.Load()) },
		rm.noJob,
		func() float64 { return float64(rm.waiting.Load()) },
	)
	return rm
}

// waitGauge counts requests waiting now; Add(-1), when one ends, also
// counts it as ended.
type waitGauge struct{ n, ended atomic.Int64 }

func (g *waitGauge) Add(d int64) {
	g.n.Add(d)
	if d < 0 {
		g.ended.Add(-d)
	}
}

func (g *waitGauge) Load() int64 { return g.n.Load() }

// noJob is the number of requests that ended without a job: ended minus
// answered with a job. A request is counted as assigned before it ends, and
// ended is read first, so the difference can only lag (by requests between
// the two steps), never run ahead; the reported value never goes down.
func (m *Metrics) noJob() float64 {
	ended := m.waiting.ended.Load()
	assigned := m.assigned.Load()
	v := float64(ended - assigned)
	m.mu.Lock()
	defer m.mu.Unlock()
	if v > m.noJobs {
		m.noJobs = v
	}
	return m.noJobs
}
