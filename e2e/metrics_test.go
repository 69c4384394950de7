package e2e

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeMetrics reads /metrics into series → value ("name{labels}" as the
// exposition format writes it, labels sorted by name).
func (s *server) scrapeMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestTriggersMetrics triggers a pipeline (and refuses a call), lets it run
// on the built-in runners, and checks that /metrics moved.
func TestTriggersMetrics(t *testing.T) {
	s := newServer(t, "sqlite")
	s.start()
	var group, app map[string]any
	if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Grp", "path": "grp"}, &group); code != 201 {
		t.Fatalf("create group: %d %v", code, group)
	}
	s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &app)
	id := jsonID(app["id"])

	before := s.scrapeMetrics(t)
	for _, series := range []string{
		`kiln_trigger_requests_total{result="created"}`, `kiln_pipelines_finished_total{status="success"}`,
		`kiln_jobs_finished_total{status="success"}`, `kiln_jobs_pending`, `kiln_runners_waiting`,
		`kiln_runner_requests_total{result="job"}`, `kiln_runner_requests_total{result="no_job"}`,
		`kiln_job_duration_seconds_count`, `kiln_job_queue_seconds_count`, `go_goroutines`,
	} {
		if _, ok := before[series]; !ok {
			t.Errorf("series %s missing before any activity", series)
		}
	}

	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "build:\n  script: echo build\ntest:\n  stage: test\n  script: echo test\n"})
	git(t, w, "push", "-q", s.authURL("grp/app"), "main")
	var tr map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+id+"/triggers", url.Values{"description": {"metrics"}}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	api := s.URL + "/api/v4/projects/" + id + "/trigger/pipeline"
	trigForm(t, api, "token", "glptt-0000000000000000000000000000000000000000", "ref", "main").want(t, 404, "bad token")
	pl := trigForm(t, api, "token", tr["token"].(string), "ref", "main").want(t, 201, "trigger").obj
	if st := s.trigWaitPipeline(id, pl["id"], 30*time.Second); st != "success" {
		t.Fatalf("triggered pipeline ended %q", st)
	}
	// The push pipeline runs too; wait for both to be counted.
	var m map[string]float64
	trigWaitFor(30*time.Second, func() bool {
		m = s.scrapeMetrics(t)
		return m[`kiln_pipelines_finished_total{status="success"}`] >= 2
	})
	want := map[string]float64{
		`kiln_trigger_requests_total{result="created"}`:                                                            1,
		`kiln_trigger_requests_total{result="not_found"}`:                                                          1,
		`kiln_pipelines_created_total{source="trigger"}`:                                                           1,
		`kiln_pipelines_created_total{source="push"}`:                                                              1,
		`kiln_pipelines_finished_total{status="success"}`:                                                          2,
		`kiln_jobs_finished_total{status="success"}`:                                                               4,
		`kiln_job_duration_seconds_count`:                                                                          4,
		`kiln_job_queue_seconds_count`:                                                                             4,
		`kiln_runner_requests_total{result="job"}`:                                                                 4,
		`kiln_http_request_duration_seconds_count{code="201",route="POST /api/v4/projects/{id}/trigger/pipeline"}`: 1,
		`kiln_http_request_duration_seconds_count{code="404",route="POST /api/v4/projects/{id}/trigger/pipeline"}`: 1,
	}
	for series, n := range want {
		if got := m[series] - before[series]; got != n {
			t.Errorf("%s moved by %v, want %v", series, got, n)
		}
	}
	// The push, and the runners' fetches, are git requests.
	if m[`kiln_http_request_duration_seconds_count{code="200",route="git"}`] < 2 {
		t.Errorf("git requests not measured")
	}
	if m[`kiln_jobs_pending`] < 0 || m[`process_cpu_seconds_total`] <= 0 {
		t.Errorf("gauges: pending %v, process cpu %v", m[`kiln_jobs_pending`], m[`process_cpu_seconds_total`])
	}
	if t.Failed() {
		for k, v := range m {
			if strings.HasPrefix(k, "kiln_") && !strings.Contains(k, "_bucket") {
				t.Logf("%s %v", k, v)
			}
		}
	}
}

// TestTriggersMetricsAllowlist: /metrics answers 404 outside --metrics-allow.
func TestTriggersMetricsAllowlist(t *testing.T) {
	s := newServer(t, "sqlite", "--metrics-allow", "10.1.2.0/24", "--builtin-runners", "0")
	s.start()
	for _, p := range []string{"/metrics", "/-/metrics"} {
		resp, err := http.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("%s from loopback outside the allowlist: %d, want 404", p, resp.StatusCode)
		}
	}
}
