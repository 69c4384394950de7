package e2e

import (
	"bytes"
	"cmp"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// sqlExec runs statements directly on the server's database (the server
// should be stopped for SQLite), with ? placeholders on both databases.
func (s *server) sqlExec(query string, args ...any) {
	s.t.Helper()
	driver, dsn := "sqlite", "file:"+filepath.Join(s.DataDir, "kiln.db")+"?_pragma=busy_timeout(5000)"
	if s.DB != "" {
		driver, dsn = "pgx", s.DB
		n := 0
		query = rebindDollar(query, &n)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
}

func rebindDollar(q string, n *int) string {
	var b strings.Builder
	for _, c := range q {
		if c == '?' {
			*n++
			b.WriteString("$" + strconv.Itoa(*n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// jobsOf lists a pipeline's jobs (with retried ones) by name.
func (s *server) jobsOf(pid, plID string) []map[string]any {
	s.t.Helper()
	var jobs []map[string]any
	if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs?include_retried=true&per_page=100", nil, &jobs); code != 200 {
		s.t.Fatalf("jobs of pipeline %s: %d", plID, code)
	}
	return jobs
}

// mustWait polls cond until it holds, failing the test at the deadline.
func mustWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(t, d, what, cond) {
		t.Fatalf("%s: not within %s", what, d)
	}
}

// TestDelayedJobRunsAfterRestart: a `when: delayed` job whose start time
// passes while the server is down (killed) runs once it is back: the
// recovery loop's first pass finds it due.
func TestDelayedJobRunsAfterRestart(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "1")
			s.start()
			pid := newCIProject(t, s, "app")
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
later:
  when: delayed
  start_in: 4 seconds
  script: echo ran later
`})
			waitJob(t, s, pid, "main", "later", 30*time.Second, "scheduled")
			at := time.Now().Add(4 * time.Second) // no earlier than its start time
			s.kill()
			for time.Now().Before(at.Add(time.Second)) {
				time.Sleep(100 * time.Millisecond) // the start time passes while the server is down
			}
			s.start()
			j := waitJob(t, s, pid, "main", "later", 60*time.Second, "success", "failed")
			if j["status"] != "success" {
				t.Fatalf("delayed job after restart: %v", j["status"])
			}
		})
	}
}

// TestInterruptedBridgeCreatedAfterRestart: a bridge whose downstream
// pipeline was never created (the server died between committing the
// pending bridge and creating the downstream: built here as database
// state) gets its downstream after a restart, which then runs, and a depend
// bridge follows it to success.
func TestInterruptedBridgeCreatedAfterRestart(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "1")
			s.start()
			newCIProject(t, s, "down")
			pushBranch(t, s, "root/down", "main", map[string]string{".gitlab-ci.yml": "down:\n  script: echo downstream\n"})
			upID := newCIProject(t, s, "up")
			pushBranch(t, s, "root/up", "main", map[string]string{".gitlab-ci.yml": `
stages: [build, deploy]
build:
  stage: build
  script: echo build
bridge:
  stage: deploy
  trigger:
    project: root/down
    strategy: depend
`})
			pl := waitPipeline(t, s, upID, "main", 90*time.Second)
			if pl["status"] != "success" {
				t.Fatalf("upstream pipeline: %v", pl["status"])
			}
			plID := jsonID(pl["id"])
			var bridges []map[string]any
			s.call("GET", "/api/v4/projects/"+upID+"/pipelines/"+plID+"/bridges", nil, &bridges)
			if len(bridges) != 1 || bridges[0]["downstream_pipeline"] == nil {
				t.Fatalf("bridges: %v", bridges)
			}
			bridgeID := jsonID(bridges[0]["id"])
			oldDown := jsonID(bridges[0]["downstream_pipeline"].(map[string]any)["id"])

			s.stop()
			// As if the server had died right after the bridge became
			// pending: no downstream pipeline, the bridge pending (for longer
			// than the recovery grace), the upstream pipeline running.
			long := time.Now().Add(-10 * time.Minute).UnixMicro()
			s.sqlExec(`UPDATE pipelines SET upstream_job_id = NULL, upstream_pipeline_id = NULL WHERE id = ?`, oldDown)
			s.sqlExec(`UPDATE jobs SET status = 'pending', downstream_pipeline_id = NULL, finished_at = NULL, queued_at = ? WHERE id = ?`, long, bridgeID)
			s.sqlExec(`UPDATE pipelines SET status = 'running', finished_at = NULL, duration = NULL WHERE id = ?`, plID)
			s.start()

			var got map[string]any
			mustWait(t, 60*time.Second, "bridge linked to a new downstream pipeline that finished", func() bool {
				var bs []map[string]any
				s.call("GET", "/api/v4/projects/"+upID+"/pipelines/"+plID+"/bridges", nil, &bs)
				if len(bs) != 1 {
					return false
				}
				got = bs[0]
				return got["status"] == "success" || got["status"] == "failed"
			})
			dp, _ := got["downstream_pipeline"].(map[string]any)
			if got["status"] != "success" || dp == nil || jsonID(dp["id"]) == oldDown {
				t.Fatalf("bridge after restart: status %v, downstream %v (old %s)", got["status"], dp, oldDown)
			}
			if st := s.trigWaitPipeline(upID, plID, 30*time.Second); st != "success" {
				t.Errorf("upstream pipeline after restart: %s", st)
			}
		})
	}
}

// TestBuiltinRunnerJobsFinishedAtRestart: jobs running on the server's own
// built-in runners when it is killed are finished as soon as it is back
// (not after the 5-minute stale timeout), with runner_system_failure; a job
// with retry: {when: runner_system_failure} is retried and its retry runs.
func TestBuiltinRunnerJobsFinishedAtRestart(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "2")
			s.start()
			pid := newCIProject(t, s, "app")
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
plain:
  script:
    - echo started
    - sleep 60
retrying:
  retry:
    max: 1
    when: runner_system_failure
  script:
    - if [ "$SECOND_ATTEMPT" = yes ]; then echo second attempt; exit 0; fi
    - echo started
    - sleep 60
`})
			var plID string
			mustWait(t, 60*time.Second, "both jobs running and acknowledged", func() bool {
				var pls []map[string]any
				s.call("GET", "/api/v4/projects/"+pid+"/pipelines", nil, &pls)
				if len(pls) == 0 {
					return false
				}
				plID = jsonID(pls[0]["id"])
				n := 0
				for _, j := range s.jobsOf(pid, plID) {
					if j["status"] == "running" && strings.Contains(jobTrace(t, s, pid, jsonID(j["id"])), "started") {
						n++
					}
				}
				return n == 2
			})
			// Jobs read variables when they are handed out: the running
			// attempt does not see this, its retry does.
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "SECOND_ATTEMPT", "value": "yes"}, nil); code != 201 {
				t.Fatalf("create variable: %d", code)
			}
			s.kill()
			s.start()
			restarted := time.Now()
			mustWait(t, 30*time.Second, "jobs of the killed built-in runners finished", func() bool {
				var plain bool
				var attempts []map[string]any
				for _, j := range s.jobsOf(pid, plID) {
					switch j["name"] {
					case "plain":
						plain = j["status"] == "failed" && j["failure_reason"] == "runner_system_failure"
					case "retrying":
						attempts = append(attempts, j)
					}
				}
				slices.SortFunc(attempts, func(a, b map[string]any) int { return cmp.Compare(a["id"].(float64), b["id"].(float64)) })
				return plain && len(attempts) == 2 &&
					attempts[0]["status"] == "failed" && attempts[0]["failure_reason"] == "runner_system_failure" &&
					attempts[1]["status"] == "success"
			})
			t.Logf("finished %s after the restart", time.Since(restarted).Round(time.Millisecond))
		})
	}
}

// TestUnacknowledgedJobGoesBackToPending: a runner that takes a job and is
// never heard of again (its response lost: it never sends the first state
// update or trace) does not keep the job: after --runner-ack-timeout the
// job is pending again, the token it was handed is refused, and a real
// runner runs it.
func TestUnacknowledgedJobGoesBackToPending(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0", "--runner-ack-timeout", "2s")
			s.start()
			pid := newCIProject(t, s, "app")
			_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "flaky", "run_untagged": true})
			// quiet acknowledges, then prints nothing for longer than the ack
			// timeout: it must not be requeued (it would run twice).
			ledger := filepath.Join(t.TempDir(), "ledger")
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": fmt.Sprintf(`
job:
  script: echo hello from a real runner
quiet:
  script:
    - echo run >> %q
    - sleep 6
`, ledger)})

			// Take the job the way GitLab Runner asks for one, then drop it.
			body, _ := json.Marshal(map[string]any{"token": tok, "info": map[string]any{"name": "gitlab-runner", "version": "18.6.0",
				"features": map[string]any{"two_phase_job_commit": true, "trace_checksum": true}}})
			var job map[string]any
			mustWait(t, 30*time.Second, "job handed out", func() bool {
				resp, err := http.Post(s.URL+"/api/v4/jobs/request", "application/json", bytes.NewReader(body))
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 201 {
					return false
				}
				return json.Unmarshal(raw, &job) == nil
			})
			jobID := jsonID(job["id"])
			jobToken, _ := job["token"].(string)
			var j map[string]any
			s.call("GET", "/api/v4/projects/"+pid+"/jobs/"+jobID, nil, &j)
			if j["status"] != "running" {
				t.Fatalf("handed-out job is %v", j["status"])
			}
			mustWait(t, 30*time.Second, "unacknowledged job back to pending", func() bool {
				s.call("GET", "/api/v4/projects/"+pid+"/jobs/"+jobID, nil, &j)
				return j["status"] == "pending"
			})
			// The dropped token no longer works: a late runner drops the job.
			req, _ := http.NewRequest("PUT", s.URL+"/api/v4/jobs/"+jobID, strings.NewReader(url.Values{"token": {jobToken}, "state": {"running"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if resp, err := http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			} else if resp.Body.Close(); resp.StatusCode != 403 {
				t.Errorf("update with the revoked token: %d, want 403", resp.StatusCode)
			}
			startRunner(t, s, "real", tok)
			j = waitJob(t, s, pid, "main", "job", 60*time.Second, "success", "failed")
			if j["status"] != "success" || jsonID(j["id"]) != jobID {
				t.Fatalf("job after requeue: %v (id %v, want %s)", j["status"], j["id"], jobID)
			}
			if tr := jobTrace(t, s, pid, jobID); !strings.Contains(tr, "hello from a real runner") {
				t.Errorf("trace:\n%s", tr)
			}
			q := waitJob(t, s, pid, "main", "quiet", 60*time.Second, "success", "failed")
			if b, _ := os.ReadFile(ledger); q["status"] != "success" || string(b) != "run\n" {
				t.Errorf("acknowledged silent job: %v, ran %q", q["status"], b)
			}
		})
	}
}

// TestDisconnectedJobRequestRequeued: a runner asks for a job and hangs up
// before reading the answer (the server hands the job out into a closed
// connection). The job goes back to pending after --runner-ack-timeout and
// a real runner runs it.
func TestDisconnectedJobRequestRequeued(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0", "--runner-ack-timeout", "2s")
	s.start()
	pid := newCIProject(t, s, "app")
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "gone", "run_untagged": true})
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": "job:\n  script: echo ran after all\n"})
	waitJob(t, s, pid, "main", "job", 30*time.Second, "pending")

	body := fmt.Sprintf(`{"token":%q,"info":{"name":"gitlab-runner","version":"17.0.0"}}`, tok)
	req := fmt.Sprintf("POST /api/v4/jobs/request HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", s.addr, len(body), body)
	var j map[string]any
	mustWait(t, 30*time.Second, "job handed out to a request whose client hung up", func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			return false
		}
		c.Write([]byte(req))
		c.Close() // never reads the answer
		time.Sleep(200 * time.Millisecond)
		var jobs []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/jobs", nil, &jobs)
		if len(jobs) == 1 {
			j = jobs[0]
		}
		return j["status"] == "running"
	})
	jobID := jsonID(j["id"])
	mustWait(t, 30*time.Second, "job back to pending", func() bool {
		s.call("GET", "/api/v4/projects/"+pid+"/jobs/"+jobID, nil, &j)
		return j["status"] == "pending"
	})
	startRunner(t, s, "real", tok)
	j = waitJob(t, s, pid, "main", "job", 60*time.Second, "success", "failed")
	if j["status"] != "success" || jsonID(j["id"]) != jobID {
		t.Fatalf("job after requeue: %v (id %v, want %s)", j["status"], j["id"], jobID)
	}
}
