package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/runner"
	kilnserver "github.com/kilnci/kiln/internal/server"
	"github.com/kilnci/kiln/internal/testenv"
)

// countOwned counts the containers and networks labelled as owner's.
func countOwned(t *testing.T, e *containers.Engine, owner string) (int, int) {
	t.Helper()
	ids, err := e.List(context.Background(), containers.LabelOwner, owner)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := e.Networks(context.Background(), containers.LabelOwner, owner)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids), len(nets)
}

// TestContainerPipeline: `kiln server` with default settings, on a machine
// whose container engine answers at its default socket, runs a pipeline
// whose jobs use two different local images and a service: each job sees
// its own image (bash in one, only sh in the other, never the host's
// files), artifacts pass from the first stage to the second, the service
// is reachable by its alias with its variables, and nothing is left in
// the engine afterwards.
func TestContainerPipeline(t *testing.T) {
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	s := newServer(t, "sqlite")
	s.start()
	owner := kilnserver.BuiltinContainerOwner(s.DataDir)
	pid := newCIProject(t, s, "app")
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
stages: [build, test]
variables:
  GREETING: from-pipeline
build:
  stage: build
  image: ` + testenv.ImageBash + `
  script:
    - echo "build shell=${BASH_VERSION:+bash}"
    - if test -e /etc/debian_version; then echo HOST FILES VISIBLE; exit 1; fi
    - mkdir -p out && echo made-in-bash-image > out/result.txt
  artifacts:
    paths: [out/]
unpullable:
  stage: build
  image: localhost:1/kiln-test/absent:1
  allow_failure: true
  script: [echo not-reached]
test:
  stage: test
  image:
    name: ` + testenv.ImageBusybox + `
    pull_policy: if-not-present
  services:
    - name: ` + testenv.ImageService + `
      alias: db
      command: ["cmd-arg"]
      variables:
        GREETING: from-service
  script:
    - echo "test shell=${BASH_VERSION:-sh}"
    - cat out/result.txt
    - for i in $(seq 1 50); do nc db 8080 </dev/null >/dev/null 2>&1 && break; sleep 0.2; done
    - nc db 8080 </dev/null
    - echo "job sees GREETING=$GREETING"
`})
	pl := waitPipeline(t, s, pid, "main", 90*time.Second)
	jobs := pipelineJobs(t, s, pid, pl)
	build, test := jobTrace(t, s, pid, jsonID(jobs["build"]["id"])), jobTrace(t, s, pid, jsonID(jobs["test"]["id"]))
	if pl["status"] != "success" {
		t.Fatalf("pipeline %v\nbuild:\n%s\ntest:\n%s", pl["status"], build, test)
	}
	for _, c := range []struct{ trace, want string }{
		{build, "Using Docker executor with image " + testenv.ImageBash},
		{build, "build shell=bash\n"},
		{test, "Using Docker executor with image " + testenv.ImageBusybox},
		{test, "Starting service " + testenv.ImageService},
		{test, "test shell=sh\n"},
		{test, "made-in-bash-image\n"},
		{test, "hello from-service serve cmd-arg\n"},
		{test, "job sees GREETING=from-pipeline\n"},
	} {
		if !strings.Contains(c.trace, c.want) {
			t.Errorf("trace lacks %q:\n%s", c.want, c.trace)
		}
	}
	// An image that cannot be pulled: GitLab's failure reason and lines.
	un := jobs["unpullable"]
	if un["status"] != "failed" || un["failure_reason"] != "image_pull_failure" {
		t.Errorf("unpullable job: status %v failure_reason %v", un["status"], un["failure_reason"])
	}
	if tr := jobTrace(t, s, pid, jsonID(un["id"])); !strings.Contains(tr, `ERROR: Job failed: failed to pull image "localhost:1/kiln-test/absent:1" with specified policies [if-not-present]:`) ||
		strings.Contains(tr, "not-reached") {
		t.Errorf("unpullable job trace:\n%s", tr)
	}
	if c, n := countOwned(t, e, owner); c != 0 || n != 0 {
		t.Errorf("%d containers and %d networks left after the pipeline", c, n)
	}
}

// TestContainerRunnerDeath: a `kiln runner --executor docker` killed
// (SIGKILL) in the middle of a job leaves its containers running; the
// runner started again removes them and the job's network before taking
// work.
func TestContainerRunnerDeath(t *testing.T) {
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "run_untagged": true})
	owner := runner.RunnerOwner(tok)
	dir := t.TempDir()
	start := func() (*exec.Cmd, *procLog, chan struct{}) {
		cmd := exec.Command(kilnBin, "runner", "run", "--url", s.URL, "--token", tok, "--executor", "docker",
			"--builds-dir", filepath.Join(dir, "builds"), "--cache-dir", filepath.Join(dir, "cache"))
		cmd.Env = append(os.Environ(), "KILN_RUNNER_CONFIG="+filepath.Join(dir, "absent.json"), "HOME="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var l procLog
		done, err := l.start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			if t.Failed() {
				t.Logf("runner log:\n%s", l.String())
			}
		})
		return cmd, &l, done
	}
	cmd, _, done := start()
	pid := newCIProject(t, s, "app")
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
hang:
  image: ` + testenv.ImageBusybox + `
  services: [` + testenv.ImageService + `]
  script:
    - echo job-started
    - sleep 300
`})
	j := waitJob(t, s, pid, "main", "hang", 60*time.Second, "running")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(jobTrace(t, s, pid, jsonID(j["id"])), "job-started") {
		if time.Now().After(deadline) {
			t.Fatalf("job did not start:\n%s", jobTrace(t, s, pid, jsonID(j["id"])))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c, n := countOwned(t, e, owner); c != 2 || n != 1 {
		t.Fatalf("while the job runs: %d containers and %d networks, want 2 and 1", c, n)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	if c, _ := countOwned(t, e, owner); c != 2 {
		t.Fatalf("after SIGKILL: %d containers, want the 2 still there", c)
	}
	_, log2, _ := start()
	deadline = time.Now().Add(30 * time.Second)
	for {
		c, n := countOwned(t, e, owner)
		if c == 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted runner left %d containers and %d networks\n%s", c, n, log2.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestContainerBuiltinCancelAndCrash: built-in runners remove a job's
// containers and network when the job is canceled through the API; when
// the server is killed mid-job they stay, and the server started again on
// the same data dir removes them before its runners take work.
func TestContainerBuiltinCancelAndCrash(t *testing.T) {
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.start()
	owner := kilnserver.BuiltinContainerOwner(s.DataDir)
	pid := newCIProject(t, s, "app")
	ci := map[string]string{".gitlab-ci.yml": `
hang:
  image: ` + testenv.ImageBusybox + `
  services: [{name: ` + testenv.ImageService + `, alias: db}]
  script:
    - echo job-started
    - sleep 300
`}
	waitRunning := func(branch string) string {
		t.Helper()
		j := waitJob(t, s, pid, branch, "hang", 60*time.Second, "running")
		id := jsonID(j["id"])
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(jobTrace(t, s, pid, id), "job-started") {
			if time.Now().After(deadline) {
				t.Fatalf("job did not start:\n%s", jobTrace(t, s, pid, id))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if c, n := countOwned(t, e, owner); c != 2 || n != 1 {
			t.Fatalf("while the job runs: %d containers and %d networks, want 2 and 1", c, n)
		}
		return id
	}
	waitGone := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, n := countOwned(t, e, owner)
			if c == 0 && n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d containers and %d networks left", what, c, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pushBranch(t, s, "root/app", "one", ci)
	id := waitRunning("one")
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/jobs/"+id+"/cancel", nil, nil); code != 201 {
		t.Fatalf("cancel: %d", code)
	}
	waitJob(t, s, pid, "one", "hang", 30*time.Second, "canceled")
	waitGone("after cancel")

	pushBranch(t, s, "root/app", "two", ci)
	waitRunning("two")
	s.kill()
	if c, _ := countOwned(t, e, owner); c != 2 {
		t.Fatalf("after the server's SIGKILL: %d containers, want the 2 still there", c)
	}
	s.start()
	waitGone("after restart")
}
