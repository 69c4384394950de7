package runner

import (
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type runningAgent struct {
	r      *Runner
	cancel context.CancelFunc
	done   chan error
}

func startRunner(t *testing.T, fs *fakeServer, mod func(*Config)) *runningAgent {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		URL: fs.srv.URL + "/", Token: testRunnerToken, Name: "test-runner",
		BuildsDir: filepath.Join(dir, "builds"), CacheDir: filepath.Join(dir, "cache"),
		TraceInterval: 100 * time.Millisecond, CheckInterval: 50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := New(cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.Abort()
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			t.Error("runner did not stop")
		}
	})
	return a
}

func checkFinalTrace(t *testing.T, final client.UpdateJobRequest, trace string) {
	t.Helper()
	if want := fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE([]byte(trace))); final.Output.Checksum != want || final.Output.Bytesize != int64(len(trace)) {
		t.Errorf("final output %+v does not describe the stored trace (%s, %d bytes)", final.Output, want, len(trace))
	}
}

func TestAgentRunsJobWithoutGit(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(101,
		`echo hello from $CI_JOB_ID`,
		`echo "the secret is $MY_SECRET"`,
		`printf 'split %s' "$MY_SECRET" | fold -w 3 | tr -d '\n'; echo`,
		`test "$(cat "$MY_FILE")" = "file-content"`,
		`echo "project dir: $CI_PROJECT_DIR"; test "$PWD" = "$CI_PROJECT_DIR"`,
		`mkdir -p out/sub && echo a > out/a.txt && echo b > out/sub/b.txt && echo c > out/c.log`,
		`test -z "${KILN_RUNNER_TOKEN:-}" && test -z "${KILN_SECRETS_KEY:-}" && test -z "${KILN_DATABASE:-}"`,
	)
	job.Variables = append(job.Variables,
		client.Variable{Key: "MY_SECRET", Value: "hunter2-very-secret", Masked: true},
		client.Variable{Key: "MY_FILE", Value: "file-content", File: true},
	)
	job.Steps = append(job.Steps, client.Step{Name: "after_script", Script: []string{"echo after ran"}, When: "always"})
	job.Artifacts = []client.Artifact{{Name: "out", Paths: []string{"out/**/*.txt"}, ExpireIn: "1 week", ArtifactFormat: "zip", ArtifactType: "archive"}}
	fs.addJob(job)
	t.Setenv("KILN_RUNNER_TOKEN", "must-not-leak")
	t.Setenv("KILN_SECRETS_KEY", "must-not-leak")
	t.Setenv("KILN_DATABASE", "postgres://must-not-leak")
	startRunner(t, fs, nil)

	final, trace := fs.waitFinal(t, 101, 30*time.Second)
	if final.State != client.StateSuccess || final.FailureReason != "" || final.ExitCode != 0 {
		t.Fatalf("final = %+v\ntrace:\n%s", final, trace)
	}
	checkFinalTrace(t, final, trace)
	t.Logf("trace:\n%s", trace)
	for _, want := range []string{
		"Running with kiln-runner",
		"\x1b[32;1m$ echo hello from $CI_JOB_ID\x1b[0;m\nhello from 101\n",
		"the secret is [MASKED]\n",
		"section_start:", ":step_script\r\x1b[0K", "section_end:", ":after_script\r\x1b[0K",
		":upload_artifacts_on_success\r\x1b[0K",
		"after ran\n",
		"Job succeeded",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	if strings.Contains(trace, "hunter2") || strings.Contains(trace, job.Token) {
		t.Errorf("secret leaked into trace:\n%s", trace)
	}
	// The folded output splits the secret over lines, which is not the
	// secret any more; but the echo of the command must not reveal it.
	ev := fs.eventsFor(101)
	if len(ev) < 4 || ev[0] != "request:101" || ev[1] != "put:101:running" || !slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, "patch:101:0-") }) {
		t.Fatalf("unexpected event order: %v", ev)
	}
	if ev[len(ev)-1] != "put:101:success" {
		t.Fatalf("last event %q, want the final PUT", ev[len(ev)-1])
	}
	ai := slices.Index(ev, "artifacts:101")
	if ai < 0 {
		t.Fatalf("no artifact upload: %v", ev)
	}
	fs.mu.Lock()
	up := fs.uploads[101][0]
	fs.mu.Unlock()
	if up.query.Get("expire_in") != "1 week" || up.query.Get("artifact_format") != "zip" || up.query.Get("artifact_type") != "archive" || up.filename != "out.zip" {
		t.Errorf("upload query %v filename %q", up.query, up.filename)
	}
	entries := zipEntries(t, up.body)
	if entries["out/a.txt"] != "a\n" || entries["out/sub/b.txt"] != "b\n" {
		t.Errorf("artifact entries: %v", entries)
	}
	if _, ok := entries["out/c.log"]; ok {
		t.Errorf("unmatched file archived: %v", entries)
	}
}

func TestAgentScriptFailure(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(102, "echo first > build.log", "false || (exit 3)", "echo never-printed")
	job.Steps = append(job.Steps, client.Step{Name: "after_script", Script: []string{"echo cleanup", "exit 7"}, When: "always"})
	job.Artifacts = []client.Artifact{
		{Paths: []string{"nothing"}},                             // on_success: skipped
		{Name: "logs", Paths: []string{"."}, When: "on_failure"}, // uploaded
	}
	fs.addJob(job)
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 102, 30*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureScript || final.ExitCode != 3 {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	checkFinalTrace(t, final, trace)
	if strings.Contains(trace, "\nnever-printed") {
		t.Error("script continued after the failing command")
	}
	for _, want := range []string{"cleanup\n", "after_script failed, but job will continue", "ERROR: Job failed: exit code 3"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	fs.mu.Lock()
	n := len(fs.uploads[102])
	fs.mu.Unlock()
	if n != 1 {
		t.Errorf("%d uploads, want only the on_failure one", n)
	}
}

func TestAgentTimeoutKillsProcessGroup(t *testing.T) {
	fs := newFakeServer(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The script and its child ignore SIGTERM, so only SIGKILL ends them.
	job := fs.newJob(103, "trap '' TERM", "echo started", fmt.Sprintf("sleep 60 & echo $! > %s; wait", pidFile))
	job.RunnerInfo.Timeout = 1
	fs.addJob(job)
	startRunner(t, fs, nil)
	start := time.Now()
	final, trace := fs.waitFinal(t, 103, 20*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureTimeout {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	// 1 s timeout + 1 s kill grace + streaming slack.
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("timed out job took %v to finish", el)
	}
	if !strings.Contains(trace, "execution took longer than 1 seconds") {
		t.Errorf("trace:\n%s", trace)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ps", "-o", "stat=", "-p", strings.TrimSpace(string(b))).Output(); err == nil && !strings.HasPrefix(strings.TrimSpace(string(out)), "Z") {
		t.Errorf("background child still alive: %q", out)
	}
}

func TestAgentCancelViaJobStatus(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(104, "echo started-104", "sleep 60", "echo not-reached")
	job.Steps = append(job.Steps, client.Step{Name: "after_script", Script: []string{"echo after-104"}, When: "always"})
	fs.addJob(job)
	fs.mu.Lock()
	fs.cancelOn[104] = [2]string{"started-104\n", "canceled"}
	fs.mu.Unlock()
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 104, 20*time.Second)
	fs.mu.Lock()
	var canceledAt time.Time
	_ = canceledAt
	fs.mu.Unlock()
	if final.State != client.StateFailed || final.FailureReason != client.FailureUnknown {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	if strings.Contains(trace, "not-reached\n") || strings.Contains(trace, "after-104\n") {
		t.Errorf("hard cancel let the job go on:\n%s", trace)
	}
	if !strings.Contains(trace, "ERROR: Job failed: canceled") {
		t.Errorf("trace:\n%s", trace)
	}
}

func TestAgentGracefulCancelRunsAfterScript(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(105, "echo started-105", "sleep 60")
	job.Steps = append(job.Steps, client.Step{Name: "after_script", Script: []string{"echo after-105"}, When: "always"})
	fs.addJob(job)
	fs.mu.Lock()
	fs.cancelOn[105] = [2]string{"started-105\n", "canceling"}
	fs.mu.Unlock()
	startRunner(t, fs, nil)
	start := time.Now()
	final, trace := fs.waitFinal(t, 105, 20*time.Second)
	if final.State != client.StateFailed || !strings.Contains(trace, "after-105\n") {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("graceful cancel took %v", el)
	}
}

func TestAgentFinalUpdateRetriedAndDependencies(t *testing.T) {
	fs := newFakeServer(t)
	// A dependency's artifacts, as another job would have uploaded them.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "dep.txt"), []byte("from dependency\n"), 0o644)
	zp := filepath.Join(t.TempDir(), "dep.zip")
	f, _ := os.Create(zp)
	if err := writeZip(f, src, []string{"dep.txt"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	z, _ := os.ReadFile(zp)
	job := fs.newJob(106, "cat dep.txt")
	job.Dependencies = []client.Dependency{
		{ID: 7, Token: "dep-token-7", Name: "build", ArtifactsFile: client.DependencyFile{Filename: "artifacts.zip", Size: int64(len(z))}},
		{ID: 8, Token: "dep-token-8", Name: "lint"}, // no artifacts: not downloaded
	}
	fs.mu.Lock()
	fs.depZips[7] = z
	fs.failFinal = 2
	fs.mu.Unlock()
	fs.addJob(job)
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 106, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "from dependency\n") {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	ev := fs.eventsFor(106)
	if n := strings.Count(strings.Join(ev, " "), "put:106:success"); n != 3 {
		t.Errorf("%d final PUTs, want 3 (two refused): %v", n, ev)
	}
}

func TestAgentGracefulShutdownAndAbort(t *testing.T) {
	fs := newFakeServer(t)
	fs.addJob(fs.newJob(107, "echo started-107", "sleep 1", "echo finished-107"))
	a := startRunner(t, fs, nil)
	waitTrace(t, fs, 107, "started-107")
	a.cancel()
	final, trace := fs.waitFinal(t, 107, 20*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "finished-107") {
		t.Fatalf("graceful shutdown did not let the job finish: %+v\n%s", final, trace)
	}
	select {
	case <-a.done:
		a.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the running job finished")
	}

	fs2 := newFakeServer(t)
	fs2.addJob(fs2.newJob(108, "echo started-108", "sleep 60"))
	b := startRunner(t, fs2, nil)
	waitTrace(t, fs2, 108, "started-108")
	b.cancel()
	b.r.Abort()
	final, trace = fs2.waitFinal(t, 108, 10*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureRunnerSystem {
		t.Fatalf("abort: %+v\n%s", final, trace)
	}
}

func waitTrace(t *testing.T, fs *fakeServer, id int64, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		fs.mu.Lock()
		ok := strings.Contains(string(fs.traces[id]), s)
		fs.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("trace of job %d never contained %q", id, s)
}

func TestAgentCacheAndAfterScriptStatus(t *testing.T) {
	fs := newFakeServer(t)
	cache := []client.Cache{{Key: "deps-$CI_PROJECT_PATH", Paths: []string{"vendor/"}, Policy: "pull-push"}}
	j1 := fs.newJob(110, "test ! -e vendor", "mkdir -p vendor && echo cached > vendor/lib.txt")
	j1.Cache = cache
	j1.Steps = append(j1.Steps, client.Step{Name: "after_script", Script: []string{`echo "status=$CI_JOB_STATUS"`}})
	fs.addJob(j1)
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 110, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "Created cache") || !strings.Contains(trace, "status=success\n") {
		t.Fatalf("first job %+v\n%s", final, trace)
	}
	j2 := fs.newJob(111, "cat vendor/lib.txt", "exit 1")
	j2.Variables[len(j2.Variables)-1].Value = "empty" // start from a clean directory
	j2.Cache = []client.Cache{{Key: "other", FallbackKeys: []string{"deps-group/proj"}, Paths: []string{"vendor/"}, Policy: "pull"}}
	j2.Steps = append(j2.Steps, client.Step{Name: "after_script", Script: []string{`echo "status=$CI_JOB_STATUS"`}})
	fs.addJob(j2)
	final, trace = fs.waitFinal(t, 111, 30*time.Second)
	if final.State != client.StateFailed || !strings.Contains(trace, "cached\n") || !strings.Contains(trace, "status=failed\n") {
		t.Fatalf("second job %+v\n%s", final, trace)
	}
	if strings.Contains(trace, "Creating cache") {
		t.Errorf("pull-only cache was saved:\n%s", trace)
	}
}

func TestAgentDoesNotBusyLoopOnImmediate204(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	dir := t.TempDir()
	r := New(Config{URL: srv.URL, Token: "t", BuildsDir: dir, CacheDir: dir, CheckInterval: 200 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n < 3 || n > 7 {
		t.Fatalf("%d job requests in 1 s with a 200 ms check interval", n)
	}
}

// runningPuts counts the job's state=running updates after the first one
// (the two-phase start): keep-alives and status checks.
func (fs *fakeServer) runningPuts(id int64) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := 0
	for _, p := range fs.puts[id] {
		if p.State == client.StateRunning {
			n++
		}
	}
	return max(n-1, 0)
}

// TestAgentStatusChecksFollowServer: a job that prints nothing asks for its
// status as often as a Kiln server says (and so stops within about that
// long of a cancel), but keeps GitLab Runner's 30 s keep-alive with a
// server that says nothing.
func TestAgentStatusChecksFollowServer(t *testing.T) {
	t.Run("kiln", func(t *testing.T) {
		fs := newFakeServer(t)
		fs.statusMS = "200"
		fs.addJob(fs.newJob(121, "echo started-121", "sleep 60", "echo not-reached"))
		startRunner(t, fs, func(c *Config) { c.TraceInterval = time.Second })
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(fs.trace(121), "started-121"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("job did not start")
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if n := fs.runningPuts(121); n < 3 {
			t.Errorf("a silent job sent %d status checks in 1.5 s at a 200 ms status interval", n)
		}
		fs.mu.Lock()
		fs.jobStatus[121] = "canceling"
		fs.mu.Unlock()
		start := time.Now()
		final, trace := fs.waitFinal(t, 121, 20*time.Second)
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("a silent job took %v to stop after its cancel", el)
		}
		if final.State != client.StateFailed || strings.Contains(trace, "not-reached\n") {
			t.Errorf("final = %+v\n%s", final, trace)
		}
	})
	t.Run("gitlab", func(t *testing.T) {
		fs := newFakeServer(t)
		fs.addJob(fs.newJob(122, "echo started-122", "sleep 60"))
		startRunner(t, fs, nil)
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(fs.trace(122), "started-122"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("job did not start")
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if n := fs.runningPuts(122); n != 0 {
			t.Errorf("without the server's say-so a silent job sent %d keep-alives in 1.5 s", n)
		}
	})
}
