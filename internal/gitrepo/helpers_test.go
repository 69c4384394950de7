package gitrepo

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testEnv is a Store behind a real loopback HTTP server, the way the API
// layer will mount it.
type testEnv struct {
	t     *testing.T
	store *Store
	srv   *httptest.Server
	home  string

	readOnly atomic.Bool
	// inflight counts handlers still running: onPush runs after the response
	// is flushed, so a client can return before its event is recorded.
	inflight sync.WaitGroup
	mu       sync.Mutex
	events   [][]RefUpdate
}

func newTestEnv(t *testing.T, opts ...Option) *testEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(filepath.Join(t.TempDir(), "repos"), log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	e := &testEnv{t: t, store: s, home: t.TempDir()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inflight.Add(1)
		defer e.inflight.Done()
		p := strings.TrimPrefix(r.URL.Path, "/")
		i := strings.Index(p, ".git/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		s.ServeGit(w, r, p[:i], p[i+4:], !e.readOnly.Load(), func(u []RefUpdate) {
			e.mu.Lock()
			e.events = append(e.events, u)
			e.mu.Unlock()
		})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testEnv) url(repo string) string { return e.srv.URL + "/" + repo + ".git" }

// takeEvents returns and clears the onPush calls seen so far.
func (e *testEnv) takeEvents() [][]RefUpdate {
	e.inflight.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := e.events
	e.events = nil
	return ev
}

func (e *testEnv) gitEnv() []string {
	return []string{
		"HOME=" + e.home,
		"PATH=" + os.Getenv("PATH"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ada Author",
		"GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Carl Committer",
		"GIT_COMMITTER_EMAIL=carl@example.com",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z",
		"GIT_COMMITTER_DATE=2024-01-02T03:04:06Z",
		"LC_ALL=C",
	}
}

// git runs the git CLI in dir and fails the test on error.
func (e *testEnv) git(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.tryGit(dir, args...)
	if err != nil {
		e.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (e *testEnv) tryGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main", "-c", "protocol.version=2"}, args...)...)
	cmd.Dir = dir
	cmd.Env = e.gitEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// workTree makes a fresh non-bare repository for authoring commits.
func (e *testEnv) workTree() string {
	dir := e.t.TempDir()
	e.git(dir, "init", "-q")
	return dir
}

// commit writes files (path -> content; empty content deletes) and commits.
func (e *testEnv) commit(dir, msg string, files map[string]string) string {
	e.t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if c == "" {
			if err := os.Remove(full); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.git(dir, "add", "-A")
	e.git(dir, "commit", "-q", "--allow-empty", "-m", msg)
	return e.git(dir, "rev-parse", "HEAD")
}

func (e *testEnv) create(repo string) {
	e.t.Helper()
	if err := e.store.Create(context.Background(), repo); err != nil {
		e.t.Fatalf("Create(%q): %v", repo, err)
	}
}
