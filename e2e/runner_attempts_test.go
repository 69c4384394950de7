package e2e

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyProxy is a reverse proxy on loopback in front of a server that makes
// chosen requests fail the way a restarting server does: git requests get
// their connection closed without an answer, artifact downloads a 502 from
// the "load balancer".
type flakyProxy struct {
	URL string

	mu        sync.Mutex
	dropGit   int // next n git requests: connection closed
	badGetArt int // next n artifact downloads: 502
	failed    []string
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	fp := &flakyProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp.URL = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isGit := strings.Contains(r.URL.Path, ".git/")
		isArt := r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v4/jobs/") && strings.HasSuffix(r.URL.Path, "/artifacts")
		fp.mu.Lock()
		switch {
		case isGit && fp.dropGit > 0:
			fp.dropGit--
			fp.failed = append(fp.failed, "drop "+r.URL.Path)
			fp.mu.Unlock()
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		case isArt && fp.badGetArt > 0:
			fp.badGetArt--
			fp.failed = append(fp.failed, "502 "+r.URL.Path)
			fp.mu.Unlock()
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
			return
		}
		fp.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fp
}

func (fp *flakyProxy) arm(dropGit, badArtifacts int) {
	fp.mu.Lock()
	fp.dropGit, fp.badGetArt, fp.failed = dropGit, badArtifacts, nil
	fp.mu.Unlock()
}

func (fp *flakyProxy) failures() []string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return append([]string(nil), fp.failed...)
}

// TestRunnerStageAttempts: GET_SOURCES_ATTEMPTS and ARTIFACT_DOWNLOAD_ATTEMPTS
// make `kiln runner` try a failed fetch or artifact download again, with
// GitLab Runner's sections (and its clear_worktree step); without them
// (default 1) the first failure fails the job at once.
func TestRunnerStageAttempts(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	// Jobs reach git and the API through the proxy (repo_url is built from
	// the external URL; the runner is pointed at the proxy too).
	s.addr = freeAddr(t)
	s.URL = "http://" + s.addr
	fp := newFlakyProxy(t, s.URL)
	s.Extra = append(s.Extra, "--external-url", fp.URL)
	s.start()
	pid := newCIProject(t, s, "app")
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "flaky", "run_untagged": true})
	direct := s.URL
	s.URL = fp.URL
	startRunner(t, s, "flaky", tok)
	s.URL = direct

	sections := func(tr, name string) int { return strings.Count(tr, ":"+name+"\r\x1b[0K\x1b[36;1m") }
	run := func(branch, ci string, dropGit, badArtifacts int) (map[string]any, map[string]map[string]any) {
		t.Helper()
		fp.arm(dropGit, badArtifacts)
		pushBranch(t, s, "root/app", branch, map[string]string{".gitlab-ci.yml": ci})
		pl := waitPipeline(t, s, pid, branch, 90*time.Second)
		if got := len(fp.failures()); got != dropGit+badArtifacts {
			t.Errorf("%s: the proxy failed %d requests, want %d: %v", branch, got, dropGit+badArtifacts, fp.failures())
		}
		return pl, pipelineJobs(t, s, pid, pl)
	}

	t.Run("get sources default", func(t *testing.T) {
		pl, jobs := run("src-default", "job:\n  script: [echo ran]\n", 1, 0)
		tr := jobTrace(t, s, pid, jsonID(jobs["job"]["id"]))
		if pl["status"] != "failed" || sections(tr, "get_sources") != 1 || strings.Contains(tr, "clear_worktree") || strings.Contains(tr, "\nran\n") {
			t.Errorf("with the default of 1 attempt: %v\n%s", pl["status"], tr)
		}
	})
	t.Run("get sources 3", func(t *testing.T) {
		pl, jobs := run("src-three", "variables:\n  GET_SOURCES_ATTEMPTS: 3\njob:\n  script: [echo ran]\n", 1, 0)
		tr := jobTrace(t, s, pid, jsonID(jobs["job"]["id"]))
		if pl["status"] != "success" || sections(tr, "get_sources") != 2 || sections(tr, "clear_worktree") != 1 ||
			!strings.Contains(tr, "Deleting all tracked and untracked files due to source fetch failure") || !strings.Contains(tr, "\nran\n") {
			t.Errorf("with 3 attempts: %v\n%s", pl["status"], tr)
		}
	})

	// The artifact client already retries a 5xx twice (as GitLab Runner's
	// helper does); three 502s in a row outlast that.
	const artCI = `
stages: [build, test]
variables:
  GET_SOURCES_ATTEMPTS: 3
build:
  stage: build
  script: [echo made > made.txt]
  artifacts: {paths: [made.txt]}
use:
  stage: test
  script: [cat made.txt]
`
	t.Run("artifacts default", func(t *testing.T) {
		pl, jobs := run("art-default", artCI, 0, 3)
		tr := jobTrace(t, s, pid, jsonID(jobs["use"]["id"]))
		if pl["status"] != "failed" || jobs["build"]["status"] != "success" || sections(tr, "download_artifacts") != 1 {
			t.Errorf("with the default of 1 attempt: %v\n%s", pl["status"], tr)
		}
	})
	t.Run("artifacts 3", func(t *testing.T) {
		pl, jobs := run("art-three", strings.Replace(artCI, "variables:\n", "variables:\n  ARTIFACT_DOWNLOAD_ATTEMPTS: 3\n", 1), 0, 3)
		tr := jobTrace(t, s, pid, jsonID(jobs["use"]["id"]))
		if pl["status"] != "success" || sections(tr, "download_artifacts") != 2 || !strings.Contains(tr, "\nmade\n") {
			t.Errorf("with 3 attempts: %v\n%s", pl["status"], tr)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		pl, jobs := run("range", "variables:\n  GET_SOURCES_ATTEMPTS: 11\njob:\n  script: [echo ran]\n", 0, 0)
		tr := jobTrace(t, s, pid, jsonID(jobs["job"]["id"]))
		if pl["status"] != "failed" || !strings.Contains(tr, "number of attempts out of the range [1, 10] for stage: get_sources") {
			t.Errorf("GET_SOURCES_ATTEMPTS=11: %v\n%s", pl["status"], tr)
		}
	})
	s.stop()
}
