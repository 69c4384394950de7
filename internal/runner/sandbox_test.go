package runner

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	repos := filepath.Join(data, "repositories")
	for _, d := range []string{other, build, tmp, repos} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "VAR"), []byte("file-var"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The repositories dir is hidden too, nested in the data dir (as the
	// server's default): its name must not appear either.
	e := sandboxOrSkip(t, data, repos)
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
		{"data dir shows only the builds", `test "$(ls -A ` + data + `)" = builds`, true},
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

// TestSandboxKeptCommands: consecutive Keep commands share one sandbox yet
// each gets its own directory, environment, output and exit status, and
// Settle leaves no process of the job behind, even one that left its
// process group.
func TestSandboxKeptCommands(t *testing.T) {
	data := t.TempDir()
	build := filepath.Join(data, "b", "proj")
	if err := os.MkdirAll(filepath.Join(build, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := sandboxOrSkip(t, data)
	s, err := e.Prepare(context.Background(), ExecJob{BuildDir: build, TmpDir: build + ".tmp", KillGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	marker := "kiln-kept-test-" + strconv.Itoa(os.Getpid())
	cases := []struct {
		dir, script string
		env         []string
		want        string
		code        int
	}{
		{build, "echo one; echo two >&2", nil, "one\ntwo\n", 0},
		{filepath.Join(build, "sub"), "pwd; printf 'no newline'", nil, filepath.Join(build, "sub") + "\nno newline", 0},
		{build, `echo "$A|$B"; exit 3`, []string{"A=x y", "B=line1\nline2"}, "x y|line1\nline2\n", 3},
		{build, "setsid bash -c 'exec -a " + marker + " sleep 300' >/dev/null 2>&1 & sleep 0.2; echo started", nil, "started\n", 0},
		{build, "grep -qa NONCE /proc/1/cmdline && echo same-sandbox", nil, "same-sandbox\n", 0},
	}
	for i, c := range cases {
		var out bytes.Buffer
		env := append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
		err := s.Run(context.Background(), Cmd{Args: []string{"bash", "-c", c.script}, Dir: c.dir, Env: env, Out: &out, Keep: true})
		code := 0
		if se, ok := err.(*scriptExit); ok {
			code = se.code
		} else if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if out.String() != c.want || code != c.code {
			t.Errorf("case %d: output %q code %d, want %q code %d", i, out.String(), code, c.want, c.code)
		}
	}
	ps, _ := exec.Command("ps", "-eo", "args").Output()
	if !strings.Contains(string(ps), marker) {
		t.Errorf("the escaped process is not running before Settle (test broken?)")
	}
	s.Settle()
	// The kernel kills what is left in the job's PID namespace when its
	// init exits; on a loaded machine the reaping can trail Settle a little.
	if ps, gone := processGone(marker, 10*time.Second); !gone {
		t.Errorf("a process of the job outlived Settle:\n%s", ps)
	}
	// A command run on its own leaves nothing behind either.
	if err := s.Run(context.Background(), Cmd{Args: []string{"bash", "-c", "setsid bash -c 'exec -a " + marker + "-2 sleep 300' >/dev/null 2>&1 & sleep 0.2"}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if ps, gone := processGone(marker+"-2", 10*time.Second); !gone {
		t.Errorf("a process of the job outlived Run:\n%s", ps)
	}
	// Cancel kills a kept command and the next Keep command works again.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Run(ctx, Cmd{Args: []string{"sleep", "30"}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: io.Discard, Keep: true})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled kept command: %v after %v", err, time.Since(start))
	}
	var out bytes.Buffer
	if err := s.Run(context.Background(), Cmd{Args: []string{"echo", "again"}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: &out, Keep: true}); err != nil || out.String() != "again\n" {
		t.Errorf("after cancel: %q %v", out.String(), err)
	}
}

// processGone polls ps until no process's arguments contain marker, or
// until d has passed; it returns the last listing.
func processGone(marker string, d time.Duration) (string, bool) {
	deadline := time.Now().Add(d)
	for {
		ps, _ := exec.Command("ps", "-eo", "args").Output()
		if !strings.Contains(string(ps), marker) {
			return string(ps), true
		}
		if time.Now().After(deadline) {
			return string(ps), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSandboxMasksEngineSockets: a container engine's socket means root on
// the host for whoever may connect; a job must not find it, even where the
// sandbox user could (a non-root server user in the engine's group keeps
// its groups in the sandbox).
func TestSandboxMasksEngineSockets(t *testing.T) {
	data := t.TempDir()
	build := filepath.Join(data, "builds", "p")
	if err := os.MkdirAll(build, 0o700); err != nil {
		t.Fatal(err)
	}
	// A world-connectable socket outside every hidden directory, in a
	// directory like /run/podman, and a lone one like /var/run/docker.sock.
	sockDir, err := os.MkdirTemp("/var/tmp", "kiln-engine-") // not /tmp: the sandbox has its own
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	os.Chmod(sockDir, 0o755)
	engineDir := filepath.Join(sockDir, "podman")
	os.Mkdir(engineDir, 0o755)
	var socks []string
	for _, p := range []string{filepath.Join(engineDir, "podman.sock"), filepath.Join(sockDir, "docker.sock")} {
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		os.Chmod(p, 0o777)
		socks = append(socks, p)
	}
	probe := "for s in " + shellQuote(socks[0]) + " " + shellQuote(socks[1]) + "; do if test -S \"$s\"; then echo REACHABLE; else echo masked; fi; done"
	run := func(e SandboxExecutor) string {
		t.Helper()
		s, err := e.Prepare(context.Background(), ExecJob{BuildDir: build, TmpDir: build + ".tmp", KillGrace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Cleanup()
		var out bytes.Buffer
		if err := s.Run(context.Background(), Cmd{Args: []string{"sh", "-c", probe}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: &out}); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		return out.String()
	}
	e := sandboxOrSkip(t, data)
	os.MkdirAll(build+".tmp", 0o700)
	e.Mask = []string{} // nothing masked: the test sees the sockets
	if got := run(e); got != "REACHABLE\nREACHABLE\n" {
		t.Fatalf("control: sockets not visible in an unmasked sandbox (test broken?): %q", got)
	}
	e.Mask = []string{engineDir, socks[1]}
	if got := run(e); got != "masked\nmasked\n" {
		t.Errorf("engine sockets visible to the job: %q", got)
	}
	// The defaults cover the usual engine paths.
	for _, p := range []string{"/var/run/docker.sock", "/run/podman", "/run/user"} {
		if !slices.Contains(defaultSandboxMask(), p) {
			t.Errorf("default mask lacks %s", p)
		}
	}
}
