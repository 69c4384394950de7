package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runnerProc is a `kiln runner run` process.
type runnerProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	log  procLog
	done chan struct{}
}

// startRunner runs `kiln runner run --url --token [extra...]` in its own directory.
func startRunner(t testing.TB, s *server, name, token string, extra ...string) *runnerProc {
	dir := t.TempDir()
	args := []string{"runner", "run", "--url", s.URL, "--token", token, "--name", name,
		"--builds-dir", filepath.Join(dir, "builds"), "--cache-dir", filepath.Join(dir, "cache")}
	cmd := exec.Command(kilnBin, append(args, extra...)...)
	cmd.Env = append(os.Environ(), "KILN_RUNNER_CONFIG="+filepath.Join(dir, "absent.json"))
	return launchRunner(t, "runner "+name, dir, cmd)
}

// launchRunner starts cmd (a `kiln runner` command) in dir as its own
// process group, with HOME=dir and no system or interactive git
// configuration added to cmd.Env; the process group is killed at cleanup
// and its log (labelled label) shown when the test failed.
func launchRunner(t testing.TB, label, dir string, cmd *exec.Cmd) *runnerProc {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	rp := &runnerProc{t: t, cmd: cmd}
	done, err := rp.log.start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	rp.done = done
	t.Cleanup(func() {
		rp.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", label, rp.log.String())
		}
	})
	return rp
}

// kill sends SIGKILL to the runner's whole process group (runner and job shells).
func (rp *runnerProc) kill() {
	select {
	case <-rp.done:
		return
	default:
	}
	syscall.Kill(-rp.cmd.Process.Pid, syscall.SIGKILL)
	<-rp.done
}

// createRunner makes a runner through POST /user/runners and returns id and token.
func createRunner(t testing.TB, s *server, body map[string]any) (string, string) {
	t.Helper()
	var out map[string]any
	if code, _ := s.call("POST", "/api/v4/user/runners", body, &out); code != 201 {
		t.Fatalf("create runner: %d %v", code, out)
	}
	tok, _ := out["token"].(string)
	if !strings.HasPrefix(tok, "glrt-") || out["token_expires_at"] != nil {
		t.Fatalf("create runner: unexpected answer %v", out)
	}
	return jsonID(out["id"]), tok
}

// newCIProject creates group/app and returns its id and a work tree.
func newCIProject(t testing.TB, s *server, path string) string {
	t.Helper()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {path}, "path": {path}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	return jsonID(proj["id"])
}

// pushBranch commits files on a new branch and pushes it (creating a pipeline).
func pushBranch(t testing.TB, s *server, projectPath, branch string, files map[string]string) {
	t.Helper()
	work := newWorkRepo(t, branch, files)
	git(t, work, "push", "-q", s.authURL(projectPath), branch)
}

// waitPipeline waits for the newest pipeline of ref to reach a final status.
func waitPipeline(t testing.TB, s *server, pid, ref string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []map[string]any
	for time.Now().Before(deadline) {
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines?ref="+url.QueryEscape(ref), nil, &last)
		if len(last) > 0 {
			switch last[0]["status"] {
			case "success", "failed", "canceled", "skipped":
				return last[0]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pipeline on %s did not finish within %s: %v", ref, timeout, last)
	return nil
}

func pipelineJobs(t testing.TB, s *server, pid string, pipeline map[string]any) map[string]map[string]any {
	t.Helper()
	var jobs []map[string]any
	if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pipeline["id"])+"/jobs", nil, &jobs); code != 200 {
		t.Fatalf("pipeline jobs: %d", code)
	}
	out := map[string]map[string]any{}
	for _, j := range jobs {
		out[j["name"].(string)] = j
	}
	return out
}

// waitJob waits until the job named name on ref has one of the statuses.
func waitJob(t testing.TB, s *server, pid, ref, name string, timeout time.Duration, statuses ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for time.Now().Before(deadline) {
		var jobs []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/jobs?per_page=100", nil, &jobs)
		for _, j := range jobs {
			if j["name"] == name && j["ref"] == ref {
				last = j
				for _, st := range statuses {
					if j["status"] == st {
						return j
					}
				}
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s on %s not %v within %s: %v", name, ref, statuses, timeout, last)
	return nil
}

func jobTrace(t testing.TB, s *server, pid, jobID string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/api/v4/projects/"+pid+"/jobs/"+jobID+"/trace", nil)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("trace of job %s: %d %s", jobID, resp.StatusCode, b)
	}
	return string(b)
}

// TestRunnerExternal is issue #4's walk-through with external runners: a
// 3-stage pipeline routed by tags, artifacts passed between stages, a
// masked variable kept out of the trace, a canceled job, a timed-out job and
// a runner killed mid-job.
func TestRunnerExternal(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0", "--runner-stale-timeout", "4s")
			s.start()
			pid := newCIProject(t, s, "app")
			_, tokA := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "alpha-runner", "tag_list": "alpha", "run_untagged": true})
			_, tokB := createRunner(t, s, map[string]any{"runner_type": "project_type", "project_id": pid, "description": "beta-runner", "tag_list": []string{"beta"}, "run_untagged": false})
			_, tokC := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "gamma-runner", "tag_list": "gamma", "run_untagged": false})
			startRunner(t, s, "alpha", tokA)
			startRunner(t, s, "beta", tokB)
			rc := startRunner(t, s, "gamma", tokC)

			const secret = "s3cr3t-Value-9876"
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "MY_SECRET", "value": secret, "masked": true}, nil); code != 201 {
				t.Fatalf("create masked variable: %d", code)
			}

			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
stages: [build, test, deploy]
build:
  stage: build
  tags: [alpha]
  script:
    - echo "runner=$CI_RUNNER_DESCRIPTION"
    - mkdir -p out && echo built > out/result.txt
    - echo "secret is $MY_SECRET"
  artifacts:
    paths: [out/]
test:
  stage: test
  tags: [beta]
  script:
    - echo "runner=$CI_RUNNER_DESCRIPTION"
    - test "$(cat out/result.txt)" = built
    - echo "artifact ok"
deploy:
  stage: deploy
  script:
    - echo "runner=$CI_RUNNER_DESCRIPTION"
    - test -f README.md
`, "README.md": "hello\n"})
			pl := waitPipeline(t, s, pid, "main", 90*time.Second)
			jobs := pipelineJobs(t, s, pid, pl)
			if pl["status"] != "success" {
				for n, j := range jobs {
					t.Logf("%s: %v %v\n%s", n, j["status"], j["failure_reason"], jobTrace(t, s, pid, jsonID(j["id"])))
				}
				t.Fatalf("pipeline: %v", pl["status"])
			}
			for name, want := range map[string]string{"build": "alpha-runner", "test": "beta-runner", "deploy": "alpha-runner"} {
				tr := jobTrace(t, s, pid, jsonID(jobs[name]["id"]))
				if !strings.Contains(tr, "runner="+want) {
					t.Errorf("job %s did not run on %s:\n%s", name, want, tr)
				}
				if strings.Contains(tr, secret) {
					t.Errorf("job %s trace shows the masked value", name)
				}
			}
			if tr := jobTrace(t, s, pid, jsonID(jobs["build"]["id"])); !strings.Contains(tr, "secret is [MASKED]") {
				t.Errorf("build trace does not show the masked placeholder:\n%s", tr)
			}
			if tr := jobTrace(t, s, pid, jsonID(jobs["test"]["id"])); !strings.Contains(tr, "artifact ok") {
				t.Errorf("test job did not see build's artifact:\n%s", tr)
			}
			// The stored file must not hold the secret either.
			filepath.Walk(filepath.Join(s.DataDir, "traces"), func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
						t.Errorf("stored trace %s contains the masked value", p)
					}
				}
				return nil
			})

			// Cancel mid-run: the job stops within about a second.
			pushBranch(t, s, "root/app", "cancel", map[string]string{".gitlab-ci.yml": `
long:
  script:
    - 'for i in $(seq 1 600); do echo tick $i; sleep 0.1; done'
`})
			j := waitJob(t, s, pid, "cancel", "long", 30*time.Second, "running")
			jid := jsonID(j["id"])
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(jobTrace(t, s, pid, jid), "tick 5"); {
				if time.Now().After(deadline) {
					t.Fatalf("job never printed:\n%s", jobTrace(t, s, pid, jid))
				}
				time.Sleep(50 * time.Millisecond)
			}
			start := time.Now()
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/jobs/"+jid+"/cancel", nil, nil); code != 201 {
				t.Fatalf("cancel: %d", code)
			}
			waitJob(t, s, pid, "cancel", "long", 10*time.Second, "canceled")
			took := time.Since(start)
			t.Logf("cancel → canceled in %s", took)
			if took > 3*time.Second {
				t.Errorf("cancel took %s", took)
			}
			before := jobTrace(t, s, pid, jid)
			time.Sleep(1500 * time.Millisecond)
			if after := jobTrace(t, s, pid, jid); after != before || strings.Contains(after, "tick 600") {
				t.Errorf("trace kept growing after cancel")
			}

			// Timeout.
			pushBranch(t, s, "root/app", "timeout", map[string]string{".gitlab-ci.yml": `
slow:
  timeout: 3 seconds
  script:
    - 'for i in $(seq 1 300); do echo waiting $i; sleep 0.1; done'
`})
			pl = waitPipeline(t, s, pid, "timeout", 60*time.Second)
			j = pipelineJobs(t, s, pid, pl)["slow"]
			if j["status"] != "failed" || j["failure_reason"] != "job_execution_timeout" {
				t.Errorf("timed-out job: %v %v", j["status"], j["failure_reason"])
			}

			// A runner killed mid-job: its job fails with runner_system_failure
			// after the stale timeout and the pipeline finishes.
			pushBranch(t, s, "root/app", "kill", map[string]string{".gitlab-ci.yml": `
victim:
  tags: [gamma]
  script:
    - echo started
    - sleep 120
after:
  stage: test
  when: always
  script:
    - echo after
`})
			j = waitJob(t, s, pid, "kill", "victim", 30*time.Second, "running")
			time.Sleep(500 * time.Millisecond)
			rc.kill()
			killed := time.Now()
			pl = waitPipeline(t, s, pid, "kill", 30*time.Second)
			t.Logf("killed runner's job failed %s after the kill", time.Since(killed))
			jobs = pipelineJobs(t, s, pid, pl)
			if v := jobs["victim"]; v["status"] != "failed" || v["failure_reason"] != "runner_system_failure" {
				t.Errorf("victim: %v %v", v["status"], v["failure_reason"])
			}
			if a := jobs["after"]; a["status"] != "success" {
				t.Errorf("after: %v", a["status"])
			}
			s.stop()
		})
	}
}

// TestRunnerBuiltin: `kiln server` alone (built-in runners) runs a pushed
// pipeline, and shuts down promptly while its runners long-poll.
func TestRunnerBuiltin(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "2")
	s.start()
	pid := newCIProject(t, s, "app")
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
build:
  stage: build
  script:
    - mkdir -p dist && echo "v1" > dist/version
  artifacts:
    paths: [dist/]
check:
  stage: test
  script:
    - test "$(cat dist/version)" = v1
`})
	pl := waitPipeline(t, s, pid, "main", 60*time.Second)
	if pl["status"] != "success" {
		for n, j := range pipelineJobs(t, s, pid, pl) {
			t.Logf("%s: %v %v\n%s", n, j["status"], j["failure_reason"], jobTrace(t, s, pid, jsonID(j["id"])))
		}
		t.Fatalf("pipeline: %v", pl["status"])
	}
	var runners []map[string]any
	s.call("GET", "/api/v4/runners/all", nil, &runners)
	online := 0
	for _, r := range runners {
		if r["builtin"] == true && r["status"] == "online" {
			online++
		}
	}
	if online != 2 {
		t.Errorf("built-in runners online = %d, want 2: %v", online, runners)
	}
	// Artifacts download through the project API.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v4/projects/%s/jobs/artifacts/main/download?job=build", s.URL, pid), nil)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("PK")) {
		t.Errorf("artifacts download: %d %q", resp.StatusCode, b[:min(len(b), 40)])
	}
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown with long-polling built-in runners took %s", d)
	}
}
