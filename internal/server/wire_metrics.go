package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kilnci/kiln/internal/metrics"
)

// DefaultMetricsAllow is who may read /metrics unless configured: this
// machine only.
const DefaultMetricsAllow = "127.0.0.0/8,::1/128"

// pendingJobsTTL bounds how often a scrape counts pending jobs.
const pendingJobsTTL = 5 * time.Second

// wireMetrics creates the server's Prometheus registry, feeds it from the
// engine, and serves it on GET /metrics (and GitLab's /-/metrics) to the
// addresses of --metrics-allow. It runs before the other areas, which feed
// their own metrics (runner requests, trigger calls) from s.metrics.
func (s *Server) wireMetrics(ctx context.Context) error {
	allowSpec := s.cfg.MetricsAllow
	if allowSpec == "" {
		allowSpec = DefaultMetricsAllow
	}
	allow, err := metrics.ParseAllowList(allowSpec)
	if err != nil {
		return fmt.Errorf("--metrics-allow: %w", err)
	}
	m := metrics.New()
	s.metrics = m
	m.RegisterPendingJobs(s.store.CountPendingJobs, pendingJobsTTL)
	m.RegisterLoops(func() []metrics.Loop {
		var out []metrics.Loop
		for _, st := range s.loops.Status() {
			out = append(out, metrics.Loop{Name: st.Name, Running: st.Running, Failing: st.LastErr != "",
				Passes: st.Passes, Skipped: st.Skipped, LastPass: st.LastRun})
		}
		return out
	})
	s.engine.Observer.PipelineCreated = m.PipelineCreated
	s.engine.Observer.PipelineFinished = m.PipelineFinished
	s.engine.Observer.JobFinished = m.JobFinished
	h := metrics.Allow(allow, m.Handler())
	s.mux.Handle("GET /metrics", h)
	s.mux.Handle("GET /-/metrics", h)
	return nil
}

// instrument measures every request under its route pattern; the catch-all
// "/" is split into git and web so that neither hides the other.
func (s *Server) instrument(h http.Handler) http.Handler {
	return s.metrics.Instrument(h, func(r *http.Request) string {
		if r.Pattern == "/" {
			if _, _, ok := splitGitPath(r.URL.Path); ok {
				return "git"
			}
			return "web"
		}
		return r.Pattern
	})
}
