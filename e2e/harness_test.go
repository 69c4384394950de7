// Package e2e drives the real kiln binary over loopback HTTP with the real
// git client, against SQLite and PostgreSQL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kilnci/kiln/internal/runner"
	"github.com/kilnci/kiln/internal/testenv"
)

var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-bin")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	build := exec.Command("go", "build", "-o", kilnBin, "../cmd/kiln")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kiln failed:", err)
		os.Exit(1)
	}
	// Built-in runners sandbox their jobs by default. Where this machine
	// cannot (no bubblewrap), run the suite in unsafe mode locally; in CI
	// (KILN_REQUIRE_SERVICES=1) .ci/run installs bubblewrap and the
	// sandbox tests fail instead.
	if err := (runner.SandboxExecutor{}).Check(context.Background()); err != nil && os.Getenv("KILN_REQUIRE_SERVICES") != "1" {
		fmt.Fprintf(os.Stderr, "e2e: job sandbox unavailable (%v); built-in runners run unsandboxed\n", err)
		os.Setenv("KILN_BUILTIN_RUNNERS_UNSAFE", "1")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const rootToken = "glpat-e2e-root-token-0123456789abcdef"

// server is a running kiln process.
type server struct {
	t       testing.TB
	URL     string
	DataDir string
	DB      string
	Extra   []string
	Env     []string
	cmd     *exec.Cmd
	log     procLog
	done    chan struct{}
	addr    string

	// Wrap is a command line the binary runs under (e.g. prlimit ...).
	Wrap []string
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// dbKinds lists the databases e2e tests run against: "sqlite" and "postgres".
func dbKinds() []string { return []string{"sqlite", "postgres"} }

// newServer prepares (but does not start) a server with a fresh data dir and
// database of the given kind.
func newServer(t testing.TB, kind string, extra ...string) *server {
	s := &server{t: t, DataDir: t.TempDir(), Extra: extra}
	if kind == "postgres" {
		dsn := testenv.PostgresDSN(t)
		schema := testenv.UniqueName("kiln_e2e")
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); db.Close() })
		s.DB = dsn + "&search_path=" + schema
	}
	s.addr = freeAddr(t)
	s.URL = "http://" + s.addr
	return s
}

// start runs the binary and waits until /-/readiness answers.
func (s *server) start() {
	t := s.t
	args := []string{"server", "--listen", s.addr, "--data-dir", s.DataDir}
	if s.DB != "" {
		args = append(args, "--database", s.DB)
	}
	args = append(args, s.Extra...)
	cmd := exec.Command(kilnBin, args...)
	if len(s.Wrap) > 0 {
		cmd = exec.Command(s.Wrap[0], append(append(s.Wrap[1:len(s.Wrap):len(s.Wrap)], kilnBin), args...)...)
	}
	cmd.Env = append(os.Environ(), "KILN_INITIAL_ROOT_TOKEN="+rootToken, "KILN_INITIAL_ROOT_PASSWORD=rootpassword1", "KILN_LOG_LEVEL=debug")
	cmd.Env = append(cmd.Env, s.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done, err := s.log.start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd, s.done = cmd, done
	t.Cleanup(func() {
		// Graceful first: built-in runners then kill their jobs' process
		// groups, which a SIGKILL of the server would leave running (and
		// writing into the temp dir being removed).
		if s.cmd != nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
				s.cmd = nil
			case <-time.After(10 * time.Second):
			}
		}
		s.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/-/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("server exited early:\n%s", s.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server did not become ready:\n%s", s.Log())
}

// Log returns what the server printed so far.
func (s *server) Log() string {
	return s.log.String()
}

// stop sends SIGTERM and waits for a graceful exit.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.t.Errorf("server did not stop within 15s of SIGTERM")
		s.kill()
	}
	s.cmd = nil
}

// kill sends SIGKILL to the server's process group (a crash).
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// call makes an API request as root (or with the given token) and decodes JSON into out.
func (s *server) call(method, path string, body any, out any) (int, http.Header) {
	return s.callAs(rootToken, method, path, body, out)
}

func (s *server) callAs(token, method, path string, body any, out any) (int, http.Header) {
	s.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		js, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(js), "application/json"
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d, decoding %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// git runs the git CLI in dir and fails the test on error.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func gitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_AUTHOR_NAME=Kiln Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Kiln Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// newWorkRepo creates a local repository with files committed on branch.
func newWorkRepo(t testing.TB, branch string, files map[string]string) string {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", branch)
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "initial commit")
	return dir
}

// authURL is the repository URL with root's token as password.
func (s *server) authURL(path string) string {
	u, _ := url.Parse(s.URL)
	u.User = url.UserPassword("root", rootToken)
	return u.String() + "/" + path + ".git"
}

// callQuiet posts a form as root and returns the status, or 0 when the
// request could not be made (server down); it never fails the test.
func (s *server) callQuiet(method, path string, form url.Values) (int, error) {
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// procLog collects a child process's combined output for failure reports.
type procLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// start starts cmd with its output captured and returns a channel closed
// once the process has exited.
func (l *procLog) start(cmd *exec.Cmd) (chan struct{}, error) {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.buf.WriteString(sc.Text() + "\n")
			l.mu.Unlock()
		}
	}()
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	return done, nil
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
