package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetricsSeries(t *testing.T) {
	m := New()
	var n atomic.Int64
	m.RegisterPendingJobs(func(context.Context) (int64, error) { return 3 + n.Add(1) - 1, nil }, time.Hour)
	m.RegisterRunnerRequests(func() float64 { return 2 }, func() float64 { return 5 }, func() float64 { return 1 })
	m.TriggerResult(201)
	m.TriggerResult(404)
	m.TriggerResult(429)
	m.PipelineCreated("push")
	m.PipelineFinished("failed")
	m.JobFinished("success", 2*time.Second, 90*time.Second)
	m.JobFinished("canceled", -1, -1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v4/projects/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	h := m.Instrument(mux, nil)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v4/projects/42", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nothing", nil))
	body := scrape(t, m)
	for _, want := range []string{
		`kiln_trigger_requests_total{result="created"} 1`,
		`kiln_trigger_requests_total{result="not_found"} 1`,
		`kiln_trigger_requests_total{result="rate_limited"} 1`,
		`kiln_pipelines_created_total{source="push"} 1`,
		`kiln_pipelines_finished_total{status="failed"} 1`,
		`kiln_jobs_finished_total{status="success"} 1`,
		`kiln_jobs_finished_total{status="canceled"} 1`,
		`kiln_job_duration_seconds_count 1`,
		`kiln_job_duration_seconds_sum 90`,
		`kiln_job_queue_seconds_sum 2`,
		`kiln_jobs_pending 3`,
		`kiln_runner_requests_total{result="job"} 2`,
		`kiln_runner_requests_total{result="no_job"} 5`,
		`kiln_runners_waiting 1`,
		`kiln_http_request_duration_seconds_count{code="204",route="GET /api/v4/projects/{id}"} 1`,
		`kiln_http_request_duration_seconds_count{code="404",route="unmatched"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
	// The pending count is cached: a second scrape within ttl does not count.
	scrape(t, m)
	if n.Load() != 1 {
		t.Fatalf("pending jobs counted %d times, want 1", n.Load())
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.TriggerResult(201)
	m.PipelineCreated("push")
	m.PipelineFinished("success")
	m.JobFinished("success", 0, 0)
	m.RegisterPendingJobs(nil, time.Second)
	m.RegisterRunnerRequests(nil, nil, nil)
	h := http.NotFoundHandler()
	if m.Instrument(h, nil) == nil {
		t.Fatal("nil handler")
	}
}

func TestAllow(t *testing.T) {
	allow, err := ParseAllowList("127.0.0.0/8, ::1, 10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	h := Allow(allow, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for addr, want := range map[string]int{
		"127.0.0.1:5000": 200, "[::1]:5000": 200, "10.0.0.5:1": 200, "10.0.0.6:1": 404, "192.168.1.1:80": 404, "garbage": 404,
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "127.0.0.1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", addr, rec.Code, want)
		}
	}
	if _, err := ParseAllowList("10.0.0.0/33"); err == nil {
		t.Error("bad CIDR accepted")
	}
	if _, err := ParseAllowList("localhost"); err == nil {
		t.Error("host name accepted")
	}
	if l, _ := ParseAllowList(""); len(l) != 0 {
		t.Error("empty list allows someone")
	}
}
