package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner"
)

// requireSandbox skips (fails under KILN_REQUIRE_SERVICES=1, as in CI)
// where this machine cannot run the job sandbox.
func requireSandbox(t *testing.T) {
	t.Helper()
	if err := (runner.SandboxExecutor{}).Check(context.Background()); err != nil {
		if os.Getenv("KILN_REQUIRE_SERVICES") == "1" {
			t.Fatalf("job sandbox unavailable: %v", err)
		}
		t.Skipf("job sandbox unavailable: %v", err)
	}
}

// TestSandboxJobCannotReachServer: with default settings (built-in
// runners), a job in an ordinary user's personal project tries to read the
// database, secrets.key, another project's repository and another job's
// build directory, to write into the data dir and to kill the server. Each
// attempt fails, the job log says so, and the server keeps serving.
func TestSandboxJobCannotReachServer(t *testing.T) {
	requireSandbox(t)
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.start()
	serverPid := s.cmd.Process.Pid
	data, err := filepath.Abs(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}

	// A victim project whose job leaves a file in its build dir.
	vid := newCIProject(t, s, "victim")
	pushBranch(t, s, "root/victim", "main", map[string]string{".gitlab-ci.yml": `
leave:
  script:
    - echo victim-build-secret > secret.txt
`})
	if pl := waitPipeline(t, s, vid, "main", 60*time.Second); pl["status"] != "success" {
		t.Fatalf("victim pipeline: %v", pl["status"])
	}

	// The attacker: an ordinary user, pushing to a personal project.
	_, tok := s.newUser("mallory")
	var proj map[string]any
	if code, _ := s.callAs(tok, "POST", "/api/v4/projects", map[string]any{"name": "evil", "path": "evil"}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	attempt := func(what, cmd string) string {
		line := fmt.Sprintf("if %s; then echo \"LEAKED: %s\"; else echo \"DENIED: %s\"; fi", cmd, what, what)
		return "    - '" + strings.ReplaceAll(line, "'", "''") + "'\n"
	}
	ci := "attack:\n  script:\n" +
		attempt("database", fmt.Sprintf("head -c 16 %s/kiln.db | grep -q SQLite", data)) +
		attempt("secrets.key", fmt.Sprintf("cat %s/secrets.key | base64", data)) +
		attempt("other repository", fmt.Sprintf("cat %s/repositories/root/victim.git/HEAD", data)) +
		attempt("other build dir", fmt.Sprintf("cat %s/builds/*/*/*/root/victim/secret.txt", data)) +
		attempt("list data dir", fmt.Sprintf("ls -A %s | grep -vqx builds", data)) +
		attempt("write data dir", fmt.Sprintf("echo pwned > %s/pwned", data)) +
		attempt("write root fs", "echo pwned > /usr/local/pwned") +
		attempt("kill server by pid", fmt.Sprintf("kill -9 %d", serverPid)) +
		attempt("kill parent", "test $PPID -gt 0 && kill -9 $PPID") +
		attempt("kill via /proc", `found=; for p in /proc/[0-9]*; do grep -qa "kiln" $p/cmdline 2>/dev/null && found=1 && kill -9 ${p#/proc/}; done; test -n "$found"`) +
		"    - id\n    - echo attack-finished\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci})
	u := strings.Replace(s.URL, "http://", "http://mallory:"+tok+"@", 1) + "/mallory/evil.git"
	git(t, work, "push", "-q", u, "main")
	pl := waitPipeline(t, s, pid, "main", 60*time.Second)
	jobs := pipelineJobs(t, s, pid, pl)
	trace := jobTrace(t, s, pid, jsonID(jobs["attack"]["id"]))
	if pl["status"] != "success" || !strings.Contains(trace, "attack-finished") {
		t.Fatalf("attack job: %v\n%s", pl["status"], trace)
	}
	lines := map[string]bool{}
	for l := range strings.Lines(trace) {
		lines[strings.TrimSpace(l)] = true
	}
	for _, what := range []string{"database", "secrets.key", "other repository", "other build dir", "list data dir",
		"write data dir", "write root fs", "kill server by pid", "kill parent", "kill via /proc"} {
		// Whole lines: the echoed command itself contains both words.
		if !lines[strings.TrimSpace("DENIED: "+what)] || lines["LEAKED: "+what] {
			t.Errorf("%s: not denied", what)
		}
	}
	key, err := os.ReadFile(filepath.Join(data, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"victim-build-secret", strings.TrimSpace(string(key))} {
		if leak != "" && strings.Contains(trace, leak) {
			t.Errorf("trace contains %q", leak)
		}
	}
	if !strings.Contains(trace, "uid=65534") {
		t.Errorf("job did not run as uid 65534")
	}
	if _, err := os.Stat(filepath.Join(data, "pwned")); err == nil {
		t.Errorf("the job wrote into the data dir")
	}
	if err := syscall.Kill(serverPid, 0); err != nil {
		t.Fatalf("server process gone: %v", err)
	}
	if code, _ := s.call("GET", "/api/v4/version", nil, nil); code != 200 {
		t.Errorf("server does not answer after the attack: %d", code)
	}
	if t.Failed() {
		t.Logf("attack trace:\n%s", trace)
	}
}

// TestSandboxNormalJobWorks: checkout, artifacts (paths and untracked),
// and a cache handed between stages all work inside the sandbox, where
// the job runs as uid 65534 with HOME in its private /tmp.
func TestSandboxNormalJobWorks(t *testing.T) {
	requireSandbox(t)
	s := newServer(t, "sqlite", "--builtin-runners", "2")
	s.start()
	pid := newCIProject(t, s, "app")
	ci := `
stages: [build, test]
variables:
  SECRET_FILE_CONTENT: file-var-ok
build:
  stage: build
  cache:
    key: deps
    paths: [deps/]
  script:
    - test "$(id -u)" = 65534
    - test "$HOME" = /tmp && touch ~/.probe
    - grep -q hello src/hello.txt
    - mkdir -p dist deps && cp src/hello.txt dist/ && echo cached > deps/lib.txt
    - echo untracked > loose.txt
    - git status --short
  artifacts:
    paths: [dist/]
    untracked: true
test:
  stage: test
  cache:
    key: deps
    paths: [deps/]
  script:
    - grep -q hello dist/hello.txt
    - test "$(cat loose.txt)" = untracked
    - test "$(cat deps/lib.txt)" = cached
    - echo changed >> deps/lib.txt && echo changed >> dist/hello.txt
    - echo all-good
`
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": ci, "src/hello.txt": "hello\n"})
	pl := waitPipeline(t, s, pid, "main", 90*time.Second)
	jobs := pipelineJobs(t, s, pid, pl)
	if pl["status"] != "success" {
		for n, j := range jobs {
			t.Logf("%s: %v %v\n%s", n, j["status"], j["failure_reason"], jobTrace(t, s, pid, jsonID(j["id"])))
		}
		t.Fatalf("pipeline: %v", pl["status"])
	}
	tr := jobTrace(t, s, pid, jsonID(jobs["test"]["id"]))
	if !strings.Contains(tr, "shell-sandbox") || !strings.Contains(tr, "all-good") {
		t.Errorf("test job trace:\n%s", tr)
	}
	// Built-in runners fetch from the server's repository directory, bound
	// read-only into the sandbox for that, not over HTTP.
	if strings.Contains(tr, "fetching over HTTP") {
		t.Errorf("the local fetch failed in the sandbox:\n%s", tr)
	}
}

// TestSandboxUnavailableRefused: where the sandbox cannot run (here: no
// bubblewrap on PATH), the server refuses to start built-in runners and
// says why and what to do; --builtin-runners-unsafe starts it anyway (and
// warns), and so does --builtin-runners=0.
func TestSandboxUnavailableRefused(t *testing.T) {
	bin := t.TempDir()
	for _, tool := range []string{"git", "sh", "bash"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(bin, tool))
		}
	}
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kilnBin, "server", "--listen", s.addr, "--data-dir", s.DataDir, "--builtin-runners", "1")
	cmd.Env = append(os.Environ(), "PATH="+bin, "KILN_INITIAL_ROOT_TOKEN="+rootToken, "KILN_BUILTIN_RUNNERS_UNSAFE=")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("server without a sandbox started built-in runners (err %v):\n%s", err, out)
	}
	for _, want := range []string{"refuse", "bubblewrap", "--builtin-runners-unsafe", "--builtin-runners=0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("start failure does not mention %q:\n%s", want, out)
		}
	}

	unsafe := newServer(t, "sqlite", "--builtin-runners", "1", "--builtin-runners-unsafe")
	unsafe.Env = []string{"PATH=" + bin}
	unsafe.start()
	if !strings.Contains(unsafe.Log(), "WITHOUT a sandbox") {
		t.Errorf("unsafe mode is not announced:\n%s", unsafe.Log())
	}
	none := newServer(t, "sqlite", "--builtin-runners", "0")
	none.Env = []string{"PATH=" + bin}
	none.start()
}

// TestSandboxExternalRunnerOption: "kiln runner run --executor
// shell-sandbox" isolates jobs the same way: the job runs as uid 65534,
// cannot read the runner's configuration file (it holds the runner token)
// nor another project's checkout or the caches, and a normal job with a
// checkout and artifacts still works.
func TestSandboxExternalRunnerOption(t *testing.T) {
	requireSandbox(t)
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "sbx", "run_untagged": true})
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf", "runner.json")
	if err := os.MkdirAll(filepath.Dir(conf), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`{"url": %q, "token": %q, "executor": "shell-sandbox"}`, s.URL, tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	builds := filepath.Join(dir, "builds")
	cmd := exec.Command(kilnBin, "runner", "run", "--config", conf, "--builds-dir", builds, "--cache-dir", filepath.Join(dir, "cache"))
	launchRunner(t, "runner", dir, cmd)

	other := newCIProject(t, s, "other")
	pushBranch(t, s, "root/other", "main", map[string]string{".gitlab-ci.yml": "leave:\n  script: [echo other-checkout-secret > secret.txt]\n"})
	if pl := waitPipeline(t, s, other, "main", 60*time.Second); pl["status"] != "success" {
		t.Fatalf("other pipeline: %v", pl["status"])
	}
	pid := newCIProject(t, s, "app")
	ci := fmt.Sprintf(`
probe:
  script:
    - test "$(id -u)" = 65534
    - grep -q hello hello.txt
    - '! cat %s'
    - '! cat %s/*/*/root/other/secret.txt'
    - echo built > out.txt
  artifacts:
    paths: [out.txt]
`, conf, builds)
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": ci, "hello.txt": "hello\n"})
	pl := waitPipeline(t, s, pid, "main", 60*time.Second)
	jobs := pipelineJobs(t, s, pid, pl)
	tr := jobTrace(t, s, pid, jsonID(jobs["probe"]["id"]))
	if pl["status"] != "success" || !strings.Contains(tr, "shell-sandbox") {
		t.Fatalf("probe job: %v\n%s", pl["status"], tr)
	}
	if strings.Contains(tr, tok) || strings.Contains(tr, "other-checkout-secret") {
		t.Errorf("secret in trace:\n%s", tr)
	}
	if jobs["probe"]["artifacts_file"] == nil {
		t.Errorf("no artifacts uploaded: %v", jobs["probe"])
	}
}
