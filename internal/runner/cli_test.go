package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

func TestCommandRegisterAndRun(t *testing.T) {
	fs := newFakeServer(t)
	cfgPath := filepath.Join(t.TempDir(), "sub", "runner.json")
	var out, errb bytes.Buffer
	ctx := context.Background()

	if code := Command(ctx, []string{"register", "--url", fs.srv.URL, "--token", "glrt-wrong", "--config", cfgPath}, &out, &errb); code != 1 {
		t.Fatalf("wrong token: exit %d, stderr %s", code, errb.String())
	}
	errb.Reset()
	code := Command(ctx, []string{"runner", "register", "--url", fs.srv.URL, "--token", testRunnerToken, "--config", cfgPath, "--name", "ci-box"}, &out, &errb)
	if code != 0 {
		t.Fatalf("register: exit %d, stderr %s", code, errb.String())
	}
	fc, err := LoadFileConfig(cfgPath)
	if err != nil || fc.RunnerID != 5 || fc.Token != testRunnerToken || fc.Name != "ci-box" || !strings.HasPrefix(fc.SystemID, "s_") {
		t.Fatalf("saved config %+v, %v", fc, err)
	}

	// "run" picks the job up with the saved config, then stops when its
	// context ends.
	dir := t.TempDir()
	fs.addJob(fs.newJob(301, "echo via-cli"))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- Command(rctx, []string{"run", "--config", cfgPath, "--builds-dir", filepath.Join(dir, "b"), "--cache-dir", filepath.Join(dir, "c")}, &out, &errb)
	}()
	final, trace := fs.waitFinal(t, 301, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "via-cli") || !strings.Contains(trace, "on ci-box") {
		t.Fatalf("final %+v\n%s", final, trace)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}

	if code := Command(ctx, []string{"bogus"}, &out, &errb); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
	t.Setenv("KILN_RUNNER_CONFIG", filepath.Join(dir, "none.json"))
	t.Setenv("KILN_RUNNER_URL", "")
	t.Setenv("KILN_RUNNER_TOKEN", "")
	if code := Command(ctx, []string{"run"}, &out, &errb); code != 2 {
		t.Fatalf("run without url/token: exit %d", code)
	}
}

func TestAgentResumesTraceAfterServerLoss(t *testing.T) {
	fs := newFakeServer(t)
	fs.addJob(fs.newJob(109, "echo one-109", "sleep 0.5", "echo two-109"))
	startRunner(t, fs, nil)
	waitTrace(t, fs, 109, "one-109")
	// The server loses the tail of what it stored (e.g. a restart); the
	// next PATCH gets 416 and must resume from the server's length.
	fs.mu.Lock()
	fs.traces[109] = fs.traces[109][:10]
	fs.mu.Unlock()
	final, trace := fs.waitFinal(t, 109, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "one-109") || !strings.Contains(trace, "two-109") {
		t.Fatalf("final %+v\n%s", final, trace)
	}
	checkFinalTrace(t, final, trace)
	ev := strings.Join(fs.eventsFor(109), " ")
	if !strings.Contains(ev, "416:109") || strings.Contains(ev, "412:109") {
		t.Fatalf("expected a 416 and resume, no 412: %s", ev)
	}
}
