package runner

import (
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestAgentFetchesFromGitHTTPBackend serves a bare repository through git's
// own smart-HTTP CGI, requiring the job token as GitLab does.
func TestAgentFetchesFromGitHTTPBackend(t *testing.T) {
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		t.Skip("git-http-backend not installed")
	}
	root := t.TempDir()
	bare := filepath.Join(root, "group", "proj.git")
	os.MkdirAll(bare, 0o755)
	gitCmd(t, bare, "init", "-q", "--bare")
	work := t.TempDir()
	gitCmd(t, work, "init", "-q")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello from git\n"), 0o644)
	gitCmd(t, work, "add", "README")
	gitCmd(t, work, "commit", "-q", "-m", "first")
	gitCmd(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	sha := gitCmd(t, work, "rev-parse", "HEAD")
	gitCmd(t, bare, "update-ref", "refs/pipelines/5", sha)

	fs := newFakeServer(t)
	const job2Token = "jobtok-202-secret"
	job := fs.newJob(201, "test -f README", "cat README", "git rev-parse HEAD", "echo untracked > build.out", "echo dirty >> README")
	backend := &cgi.Handler{Path: gitHTTPBackend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	var sawAuth, sawUnauth int
	fs.mu.Lock()
	fs.git = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		fs.mu.Lock()
		if !ok || user != "gitlab-ci-token" || (pass != job.Token && pass != job2Token) {
			sawUnauth++
			fs.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		sawAuth++
		fs.mu.Unlock()
		backend.ServeHTTP(w, r)
	})
	fs.mu.Unlock()
	job.Variables = job.Variables[:len(job.Variables)-1] // default strategy: clone
	job.GitInfo = client.GitInfo{
		RepoURL:  strings.Replace(fs.srv.URL, "http://", "http://gitlab-ci-token:"+job.Token+"@", 1) + "/group/proj.git",
		Ref:      "main",
		Sha:      sha,
		RefType:  "branch",
		Refspecs: []string{"+refs/pipelines/5:refs/pipelines/5", "+refs/heads/main:refs/remotes/origin/main"},
		Depth:    20,
	}
	job.Artifacts = []client.Artifact{{Untracked: true}}
	fs.addJob(job)

	job2 := fs.newJob(202, "cat README", "test ! -e build.out", `test "$(cat README)" = "hello from git"`,
		"git remote get-url origin")
	job2.Variables = job2.Variables[:len(job2.Variables)-1]
	job2.AllowGitFetch = true
	job2.GitInfo = job.GitInfo
	// The second job authenticates with its own token.
	job2.GitInfo.RepoURL = strings.Replace(job.GitInfo.RepoURL, job.Token, job2.Token, 1)
	startRunner(t, fs, nil)

	final, trace := fs.waitFinal(t, 201, 30*time.Second)
	if final.State != client.StateSuccess {
		t.Fatalf("final = %+v\n%s", final, trace)
	}
	for _, want := range []string{"Created fresh repository.", "Checking out " + sha[:8], "hello from git\n", sha + "\n"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	if strings.Contains(trace, job.Token) {
		t.Errorf("job token in trace:\n%s", trace)
	}
	fs.mu.Lock()
	if sawAuth == 0 {
		t.Error("git never authenticated")
	}
	ups := fs.uploads[201]
	fs.mu.Unlock()
	if len(ups) != 1 {
		t.Fatalf("%d uploads", len(ups))
	}
	if e := zipEntries(t, ups[0].body); e["build.out"] != "untracked\n" || len(e) != 1 {
		t.Errorf("untracked artifacts: %v", e)
	}

	// Same worker, same project: the checkout is reused and cleaned.
	fs.mu.Lock()
	fs.jobs[202] = job2
	fs.mu.Unlock()
	fs.addJob(job2)
	final, trace = fs.waitFinal(t, 202, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "Reusing existing Git repository") {
		t.Fatalf("fetch job: %+v\n%s", final, trace)
	}
	// The remote URL never carries the token.
	if want := fs.srv.URL + "/group/proj.git\n"; !strings.Contains(trace, want) {
		t.Errorf("trace lacks remote %q:\n%s", want, trace)
	}

	// A built-in runner is told the repository's directory and fetches
	// from it without HTTP, into the same remote-tracking refs.
	fs.mu.Lock()
	before := sawAuth + sawUnauth
	fs.mu.Unlock()
	job3 := fs.newJob(203, "cat README", "git rev-parse refs/pipelines/5 refs/remotes/origin/main", "git remote get-url origin")
	job3.Variables = job3.Variables[:len(job3.Variables)-1]
	job3.AllowGitFetch = true
	job3.GitInfo = job2.GitInfo
	job3.GitInfo.RepoURL = strings.Replace(job.GitInfo.RepoURL, job.Token, job3.Token, 1)
	job3.GitInfo.KilnLocalRepo = bare
	fs.mu.Lock()
	fs.jobs[203] = job3
	fs.mu.Unlock()
	fs.addJob(job3)
	final, trace = fs.waitFinal(t, 203, 30*time.Second)
	if final.State != client.StateSuccess || strings.Contains(trace, "over HTTP") || !strings.Contains(trace, sha+"\n"+sha+"\n") ||
		!strings.Contains(trace, fs.srv.URL+"/group/proj.git\n") {
		t.Fatalf("local fetch job: %+v\n%s", final, trace)
	}
	fs.mu.Lock()
	if n := sawAuth + sawUnauth; n != before {
		t.Errorf("local fetch made %d HTTP requests", n-before)
	}
	fs.mu.Unlock()

	// A directory that is not a usable repository: back to HTTP.
	notRepo := t.TempDir()
	os.WriteFile(filepath.Join(notRepo, "HEAD"), []byte("garbage\n"), 0o644)
	job4 := fs.newJob(204, "cat README")
	job4.Variables = job4.Variables[:len(job4.Variables)-1]
	job4.AllowGitFetch = true
	job4.GitInfo = job3.GitInfo
	job4.GitInfo.RepoURL = job.GitInfo.RepoURL // a token the git server accepts
	job4.GitInfo.KilnLocalRepo = notRepo
	fs.mu.Lock()
	fs.jobs[204] = job4
	fs.mu.Unlock()
	fs.addJob(job4)
	final, trace = fs.waitFinal(t, 204, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "fetching over HTTP") || !strings.Contains(trace, "hello from git") {
		t.Fatalf("fallback job: %+v\n%s", final, trace)
	}
	fs.mu.Lock()
	if sawAuth+sawUnauth == before {
		t.Error("fallback made no HTTP request")
	}
	fs.mu.Unlock()
}
