package runner

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sandboxOrSkip returns a sandbox executor hiding hide, or skips the test
// where this machine cannot sandbox (it fails in CI, where bubblewrap is
// installed by .ci/run).
func sandboxOrSkip(t *testing.T, hide ...string) SandboxExecutor {
	t.Helper()
	e := SandboxExecutor{Hide: hide}
	if err := e.Check(context.Background()); err != nil {
		if os.Getenv("KILN_REQUIRE_SERVICES") == "1" {
			t.Fatalf("sandbox unavailable: %v", err)
		}
		t.Skipf("sandbox unavailable: %v", err)
	}
	return e
}

func TestSandboxIsolation(t *testing.T) {
	data := t.TempDir()
	secret := filepath.Join(data, "secrets.key")
	if err := os.WriteFile(secret, []byte("top-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(data, "builds", "other")
	build := filepath.Join(data, "builds", "1", "grp", "proj")
	tmp := build + ".tmp"
	for _, d := range []string{other, build, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "VAR"), []byte("file-var"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := sandboxOrSkip(t, data)
	s, err := e.Prepare(context.Background(), ExecJob{BuildDir: build, TmpDir: tmp, KillGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	run := func(script string) (string, error) {
		var out bytes.Buffer
		err := s.Run(context.Background(), Cmd{Args: []string{"bash", "-c", script}, Dir: build, Env: os.Environ(), Out: &out})
		return out.String(), err
	}
	cases := []struct {
		name, script string
		ok           bool
	}{
		{"write build dir", "echo hi > out.txt && cat out.txt", true},
		{"cd to build dir by path", "cd " + build + " && ls", true},
		{"read file variable", "cat " + filepath.Join(tmp, "VAR"), true},
		{"write tmp", "echo x > /tmp/x && cat /tmp/x", true},
		{"read secrets.key", "cat " + secret, false},
		{"list data dir", "ls " + data + " | grep -q secrets", false},
		{"other build dir", "ls " + other, false},
		{"write data dir", "echo x > " + filepath.Join(data, "evil"), false},
		{"write file variable dir", "echo x > " + filepath.Join(tmp, "new"), false},
		{"write root fs", "echo x > /etc/kiln-evil", false},
		{"read root-only file", "cat /etc/shadow", false},
		{"signal the agent", "kill -0 " + itoa(os.Getpid()), false},
		{"unprivileged uid", "test $(id -u) = 65534", true},
	}
	for _, c := range cases {
		out, err := run(c.script)
		if (err == nil) != c.ok {
			t.Errorf("%s: err=%v, want ok=%v; output:\n%s", c.name, err, c.ok, out)
		}
		if strings.Contains(out, "top-secret") {
			t.Errorf("%s: the secret leaked: %s", c.name, out)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "evil")); err == nil {
		t.Errorf("the job wrote into the data dir")
	}
	// What the job wrote is readable by the agent afterwards.
	if b, err := os.ReadFile(filepath.Join(build, "out.txt")); err != nil || string(b) != "hi\n" {
		t.Errorf("agent reads the job's file: %q, %v", b, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// BenchmarkExecutorStart measures starting one job process ("true") through
// each executor: the sandbox's cost is paid once per git command and once
// per script of a job.
//
//	go test -run '^$' -bench ExecutorStart -benchtime 200x ./internal/runner
func BenchmarkExecutorStart(b *testing.B) {
	data := b.TempDir()
	build := filepath.Join(data, "builds", "0", "grp", "proj")
	if err := os.MkdirAll(build, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, ex := range []Executor{ShellExecutor{}, SandboxExecutor{Hide: []string{data}}} {
		b.Run(ex.Name(), func(b *testing.B) {
			if sb, ok := ex.(SandboxExecutor); ok {
				if err := sb.Check(context.Background()); err != nil {
					b.Skip(err)
				}
			}
			s, err := ex.Prepare(context.Background(), ExecJob{BuildDir: build, TmpDir: build + ".tmp", KillGrace: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := s.Run(context.Background(), Cmd{Args: []string{"true"}, Dir: build, Env: os.Environ(), Out: io.Discard}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
