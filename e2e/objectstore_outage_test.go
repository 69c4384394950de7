package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/testenv"
)

// outageCI: four build jobs print a log, wait for $GATE (when set), then
// upload an artifact each; the test job downloads all four.
const outageCI = `
stages: [build, test]
build:
  stage: build
  parallel: 4
  script:
    - 'i=0; while [ $i -lt 300 ]; do echo "log line $i of $CI_JOB_NAME"; i=$((i+1)); done'
    - 'while [ -n "$GATE" ] && [ ! -e "$GATE" ]; do sleep 0.1; done'
    - mkdir -p out && head -c 200000 /dev/urandom > "out/$CI_NODE_INDEX.bin"
  artifacts:
    paths: [out/]
test:
  stage: test
  rules:
    - if: $DELIVER
      when: manual
    - when: on_success
  script:
    - test "$(ls out | wc -l)" = 4
    - echo "downloaded the four artifacts"
`

// TestObjectStoreOutage (issue #18): the object store goes away while jobs
// upload artifacts and their logs are archived; jobs either retry or fail
// with a reason that names the object store, never hang.
//
//  1. Frozen (SIGSTOP, the outage that hangs clients without timeouts) for
//     5 s just as four jobs start uploading: /-/readiness reports the
//     object store failed meanwhile and ok after; every job ends within a
//     bound; a failed one (if any) says "object store unavailable" in its
//     log; every job's log ends up archived in the bucket. Then frozen
//     for 5 s as a job (a manual one, started during the freeze) downloads
//     its dependencies' artifacts: it waits and succeeds.
//  2. Stopped (the process gone: connections refused) while four jobs
//     upload, and left stopped: each build job fails within a bound,
//     runner_system_failure, its log naming the object store (the server
//     answers 503 "object store unavailable", which the runner retries and
//     then reports). Meanwhile an archived log read through the API, the
//     web raw log or the live log's JSON answers 503 naming the object
//     store, with Retry-After, and the job page says so. Once the store is back, the failed jobs'
//     logs are archived (the trace-archiver retries), the archived log
//     reads again, and a retry of the pipeline succeeds.
func TestObjectStoreOutage(t *testing.T) {
	weed := testenv.SeaweedFS(t)
	bucket := weed.NewBucket(t)
	// A short stall timeout makes the frozen store fail requests (and the
	// retries visible) within the freeze.
	s := newServer(t, "postgres", append([]string{"--builtin-runners", "0", "--s3-stall-timeout", "3s"}, s3Flags(weed, bucket)...)...)
	s.Env = s3Env(weed)
	s.start()
	pid := newCIProject(t, s, "app")
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "outage", "run_untagged": true})
	startRunner(t, s, "outage", tok, "--concurrent", "4")
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": outageCI})
	if pl := waitPipeline(t, s, pid, "main", 120*time.Second); pl["status"] != "success" {
		t.Fatalf("pipeline with the object store up: %v", pl["status"])
	}

	// jobsOf lists a pipeline's jobs.
	jobsOf := func(plID string) []map[string]any {
		var jobs []map[string]any
		if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs?per_page=100", nil, &jobs); code != 200 {
			t.Fatalf("pipeline %s jobs: %d", plID, code)
		}
		return jobs
	}
	builds := func(jobs []map[string]any) []map[string]any {
		var out []map[string]any
		for _, j := range jobs {
			if strings.HasPrefix(j["name"].(string), "build") {
				out = append(out, j)
			}
		}
		return out
	}
	// atGate waits until the four build jobs of a pipeline printed their
	// log and wait for the gate.
	atGate := func(plID string) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			bs := builds(jobsOf(plID))
			ready := 0
			for _, j := range bs {
				if j["status"] == "running" && strings.Contains(jobTrace(t, s, pid, jsonID(j["id"])), "log line 299 ") {
					ready++
				}
			}
			if len(bs) == 4 && ready == 4 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pipeline %s: %d of %d build jobs at the gate", plID, ready, len(bs))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	final := func(st any) bool { return slices.Contains([]any{"success", "failed", "canceled", "skipped"}, st) }
	// allFinal waits until every listed job (by id) is final, or fails the
	// test as a hang after limit.
	allFinal := func(plID string, names func([]map[string]any) []map[string]any, limit time.Duration) []map[string]any {
		deadline := time.Now().Add(limit)
		for {
			js := names(jobsOf(plID))
			open := 0
			for _, j := range js {
				if !final(j["status"]) {
					open++
				}
			}
			if open == 0 && len(js) > 0 {
				return js
			}
			if time.Now().After(deadline) {
				for _, j := range js {
					t.Logf("job %v %v: %v", j["id"], j["name"], j["status"])
				}
				t.Fatalf("pipeline %s: %d jobs still not final %s after the outage began: a hang", plID, open, limit)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	readyState := func() (int, bool) {
		code, body := readiness(t, s)
		return code, strings.Contains(body, `"object_store_check":[{"status":"failed"}]`)
	}
	waitReady := func(limit time.Duration) time.Duration {
		start := time.Now()
		for {
			code, failed := readyState()
			if code == 200 && !failed {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("readiness %d (object store failed: %v) %s after the object store came back", code, failed, limit)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// archived waits until every job's log is an object in the bucket.
	archived := func(jobs []map[string]any, limit time.Duration) time.Duration {
		start := time.Now()
		for {
			have := map[string]bool{}
			for _, n := range weed.ObjectNames(t, bucket, "traces/") {
				have[n] = true
			}
			var missing []string
			for _, j := range jobs {
				if !have["traces/"+jsonID(j["id"])+".log"] {
					missing = append(missing, jsonID(j["id"]))
				}
			}
			if len(missing) == 0 {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("logs of jobs %v not archived in the bucket %s after the object store came back", missing, limit)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// clear checks that a failed job says why, naming the object store.
	checkClear := func(j map[string]any) string {
		tr := jobTrace(t, s, pid, jsonID(j["id"]))
		if j["status"] == "failed" {
			if j["failure_reason"] == nil || j["failure_reason"] == "" || !strings.Contains(tr, "object store unavailable") {
				t.Errorf("job %v %v failed without naming the object store (failure_reason %v):\n%s", j["id"], j["name"], j["failure_reason"], tr[max(0, len(tr)-1500):])
			}
		}
		return tr
	}
	storeErrors := func() int { return strings.Count(s.Log(), "object store unavailable") }

	// 1. Frozen for 5 s as the uploads begin.
	gate1 := filepath.Join(t.TempDir(), "gate1")
	pl1 := jsonID(s.runPipeline(t, pid, "GATE", gate1)["id"])
	atGate(pl1)
	before := storeErrors()
	weed.Pause(t)
	frozen := time.Now()
	if err := os.WriteFile(gate1, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for {
		code, failed := readyState()
		if code == 503 && failed {
			break
		}
		if time.Since(frozen) > 4*time.Second {
			t.Fatalf("readiness with the object store frozen: %d (object store failed: %v)", code, failed)
		}
	}
	readyFailedAfter := time.Since(frozen)
	time.Sleep(5*time.Second - time.Since(frozen))
	weed.Resume(t)
	resumed := time.Now()
	readyAgain := waitReady(30 * time.Second)
	jobs1 := allFinal(pl1, func(js []map[string]any) []map[string]any { return js }, 120*time.Second)
	ended1 := time.Since(resumed)
	statuses := map[string]int{}
	for _, j := range jobs1 {
		statuses[j["status"].(string)]++
		checkClear(j)
		// The uploads met the frozen store: no build job ended before it
		// was resumed (the API's times have millisecond precision).
		if fin, err := time.Parse(time.RFC3339Nano, fmt.Sprint(j["finished_at"])); strings.HasPrefix(j["name"].(string), "build") && (err != nil || fin.Before(resumed.Add(-time.Millisecond))) {
			t.Errorf("job %v %v finished at %v, before the object store was resumed (%s): the freeze missed its upload", j["id"], j["name"], j["finished_at"], resumed.UTC().Format(time.RFC3339Nano))
		}
	}
	retried1 := storeErrors() - before
	var ran1 []map[string]any
	for _, j := range jobs1 {
		if j["started_at"] != nil {
			ran1 = append(ran1, j)
		}
	}
	lag1 := archived(ran1, 60*time.Second)
	t.Logf("frozen 5 s: readiness failed %s into the freeze, ok %s after resume; all %d jobs final %s after resume: %v; %d upload attempts answered 503 (retried by the runner); logs archived %s later",
		readyFailedAfter.Round(time.Millisecond), readyAgain.Round(time.Millisecond), len(jobs1), ended1.Round(time.Millisecond), statuses, retried1, lag1.Round(time.Millisecond))

	// 1b. Frozen for 5 s as a job downloads its dependencies' artifacts:
	// the manual test job is started while the store is frozen.
	pl1b := jsonID(s.runPipeline(t, pid, "DELIVER", "1")["id"])
	if got := s.waitPipelineID(t, pid, pl1b); got["status"] != "manual" {
		t.Fatalf("pipeline %s before the manual job: %v", pl1b, got["status"])
	}
	var manual map[string]any
	for _, j := range jobsOf(pl1b) {
		if j["name"] == "test" {
			manual = j
		}
	}
	before = storeErrors()
	weed.Pause(t)
	frozen = time.Now()
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/jobs/"+jsonID(manual["id"])+"/play", nil, nil); code != 200 && code != 201 {
		t.Fatalf("play the test job: %d", code)
	}
	time.Sleep(5*time.Second - time.Since(frozen))
	weed.Resume(t)
	resumed = time.Now()
	played := allFinal(pl1b, func(js []map[string]any) []map[string]any {
		return slices.DeleteFunc(js, func(j map[string]any) bool { return j["name"] != "test" })
	}, 120*time.Second)[0]
	tr := checkClear(played)
	if played["status"] != "success" || !strings.Contains(tr, "downloaded the four artifacts") {
		t.Errorf("the test job that downloaded during the freeze: %v\n%s", played["status"], tr)
	}
	if fin, err := time.Parse(time.RFC3339Nano, fmt.Sprint(played["finished_at"])); err != nil || fin.Before(resumed.Add(-time.Millisecond)) {
		t.Errorf("the test job finished at %v, before the object store was resumed (%s): the freeze missed its download", played["finished_at"], resumed.UTC().Format(time.RFC3339Nano))
	}
	t.Logf("frozen 5 s as a job downloads: it ended (%v) %s after resume; %d download attempts answered 503 (retried by the runner)",
		played["status"], time.Since(resumed).Round(time.Millisecond), storeErrors()-before)

	// 2. Stopped while the uploads run, and left stopped until every
	// build job ended.
	gate2 := filepath.Join(t.TempDir(), "gate2")
	pl2 := jsonID(s.runPipeline(t, pid, "GATE", gate2)["id"])
	atGate(pl2)
	weed.Stop(t)
	stopped := time.Now()
	if err := os.WriteFile(gate2, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, failed := readyState(); code != 503 || !failed {
		t.Errorf("readiness with the object store stopped: %d (object store failed: %v)", code, failed)
	}
	builds2 := allFinal(pl2, builds, 90*time.Second)
	ended2 := time.Since(stopped)
	for _, j := range builds2 {
		tr := checkClear(j)
		if j["status"] != "failed" || j["failure_reason"] != "runner_system_failure" {
			t.Errorf("job %v %v with the object store stopped: %v (%v), want failed (runner_system_failure)", j["id"], j["name"], j["status"], j["failure_reason"])
		}
		if i := strings.Index(tr, "ERROR: Uploading artifacts"); i >= 0 && j["id"] == builds2[0]["id"] {
			t.Logf("job %v says: %s", j["id"], strings.TrimSpace(tr[i:min(len(tr), i+400)]))
		}
	}
	t.Logf("stopped: all %d build jobs final %s after the store stopped (gate opened)", len(builds2), ended2.Round(time.Millisecond))
	// A finished job's archived log (pipeline 1's) read while the store is
	// down: the API, the web raw log and the live log's JSON answer 503
	// {"message": "... object store unavailable ..."} with Retry-After.
	oldJob := jsonID(ran1[0]["id"])
	web := s.webSession(t, "root", "rootpassword1")
	readLog := func(c *http.Client, path string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		if c == http.DefaultClient {
			req.Header.Set("PRIVATE-TOKEN", rootToken)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	logPaths := map[string]*http.Client{
		"/api/v4/projects/" + pid + "/jobs/" + oldJob + "/trace": http.DefaultClient,
		"/root/app/-/jobs/" + oldJob + "/raw":                    web,
		"/root/app/-/jobs/" + oldJob + "/trace.json":             web,
	}
	for path, c := range logPaths {
		code, body, hdr := readLog(c, path)
		var m struct{ Message string }
		json.Unmarshal([]byte(body), &m)
		if code != 503 || !strings.Contains(m.Message, "object store unavailable") || hdr.Get("Retry-After") == "" {
			t.Errorf("GET %s (an archived log) with the object store stopped: %d %q (Retry-After %q), want 503 naming the object store with Retry-After", path, code, body, hdr.Get("Retry-After"))
		}
	}
	// The job page itself says why its log is missing.
	jobPage := "/root/app/-/jobs/" + oldJob
	if code, body, _ := readLog(web, jobPage); code != 200 || !strings.Contains(body, "The log cannot be shown: object store unavailable") {
		t.Errorf("GET %s with the object store stopped: %d, no note naming the object store", jobPage, code)
	}
	restart := time.Now()
	weed.Start(t)
	readyAgain = waitReady(30 * time.Second)
	lag2 := archived(builds2, 90*time.Second)
	t.Logf("store back %s after Start began; readiness ok %s later; the failed jobs' logs archived %s later",
		time.Since(restart).Round(time.Millisecond), readyAgain.Round(time.Millisecond), lag2.Round(time.Millisecond))
	logPaths[jobPage] = web
	for path, c := range logPaths {
		if code, body, _ := readLog(c, path); code != 200 || !strings.Contains(body, "log line 299") || strings.Contains(body, "object store unavailable") {
			t.Errorf("GET %s with the object store back: %d %.300q", path, code, body)
		}
	}
	var retried map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/pipelines/"+pl2+"/retry", nil, &retried); code != 201 {
		t.Fatalf("retry pipeline %s: %d %v", pl2, code, retried)
	}
	if got := s.waitPipelineID(t, pid, pl2); got["status"] != "success" {
		for _, j := range jobsOf(pl2) {
			t.Logf("job %v %v: %v %v", j["id"], j["name"], j["status"], j["failure_reason"])
		}
		t.Fatalf("retried pipeline after the object store came back: %v", got["status"])
	}
}
