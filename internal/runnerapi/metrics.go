package runnerapi

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// Metrics counts runner protocol activity and serves it in Prometheus' text
// format. (client_golang's dependencies are not in go.sum, so the few
// metrics here are written by hand.)
type Metrics struct {
	st       *store.Store
	polls    atomic.Int64
	assigned atomic.Int64
	waiting  atomic.Int64
}

// NewMetrics returns Metrics reading job counts from st at scrape time.
func NewMetrics(st *store.Store) *Metrics { return &Metrics{st: st} }

// ServeHTTP writes the metrics.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	counts, err := m.st.CountJobsByStatus(ctx)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP kiln_runner_job_requests_total Job requests (polls) received from runners.\n# TYPE kiln_runner_job_requests_total counter\nkiln_runner_job_requests_total %d\n", m.polls.Load())
	fmt.Fprintf(w, "# HELP kiln_runner_jobs_assigned_total Jobs handed to runners.\n# TYPE kiln_runner_jobs_assigned_total counter\nkiln_runner_jobs_assigned_total %d\n", m.assigned.Load())
	fmt.Fprintf(w, "# HELP kiln_runner_requests_waiting Job requests currently long-polling.\n# TYPE kiln_runner_requests_waiting gauge\nkiln_runner_requests_waiting %d\n", m.waiting.Load())
	if err != nil {
		return
	}
	fmt.Fprintf(w, "# HELP kiln_jobs Build jobs by status (pending is the queue depth).\n# TYPE kiln_jobs gauge\n")
	for _, st := range []string{"created", "pending", "running", "canceling", "success", "failed", "canceled", "skipped", "manual", "scheduled"} {
		fmt.Fprintf(w, "kiln_jobs{status=%q} %d\n", st, counts[st])
	}
}
