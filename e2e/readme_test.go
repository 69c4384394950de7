package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the ```sh block that follows <!-- readme-test: name -->.
func readmeBlock(t *testing.T, readme, name string) string {
	t.Helper()
	marker := "<!-- readme-test: " + name + " -->"
	_, after, ok := strings.Cut(readme, marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	after = strings.TrimLeft(after, "\n")
	if !strings.HasPrefix(after, "```sh\n") {
		t.Fatalf("%s: no ```sh block right after the marker", name)
	}
	block, _, ok := strings.Cut(after[len("```sh\n"):], "\n```")
	if !ok {
		t.Fatalf("%s: unterminated block", name)
	}
	return block
}

// replaceExactly replaces old by new and fails unless old occurs once, so
// that the README cannot drift away from what the test substitutes.
func replaceExactly(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("README block has %q %d times, want once:\n%s", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

// TestReadmeQuickStartAndWalkthrough runs README.md's quick start and
// walkthrough shell blocks with bash, as written, from a fresh clone of this
// repository: the quick start in the clone, the walkthrough in the new
// empty directory it makes. Substitutions, each checked to occur exactly
// once: step 1's `go build -o kiln ./cmd/kiln` copies the binary the suite
// built from the same sources (a cold build takes minutes); KILN_LISTEN
// gives the server a free port, whose URL replaces http://127.0.0.1:8080;
// the printed token replaces `glpat-...`. The README under test is the
// working tree's (copied over the clone's, so uncommitted edits count).
// Then both pipelines (push and trigger) must succeed with their three jobs,
// and the clone must be untouched by the walkthrough.
func TestReadmeQuickStartAndWalkthrough(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	quick := readmeBlock(t, readme, "quickstart")
	walk := readmeBlock(t, readme, "walkthrough")

	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o755)
	clone := filepath.Join(tmp, "kiln")
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", "..", clone).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(clone, "README.md"), raw, 0o644)
	cloneHead := git(t, clone, "rev-parse", "HEAD")

	addr := freeAddr(t)
	base := "http://" + addr
	env := []string{"HOME=" + home, "KILN_LISTEN=" + addr, "KILN_PREBUILT=" + kilnBin,
		"GIT_AUTHOR_NAME=Reader", "GIT_AUTHOR_EMAIL=reader@example.com", "GIT_COMMITTER_NAME=Reader", "GIT_COMMITTER_EMAIL=reader@example.com", "GIT_CONFIG_NOSYSTEM=1"}
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k == "PATH" || k == "KILN_BUILTIN_RUNNERS_UNSAFE" || k == "TMPDIR" {
			env = append(env, e)
		}
	}

	quick = replaceExactly(t, quick, "go build -o kiln ./cmd/kiln", `cp "$KILN_PREBUILT" kiln`)
	srvCmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", quick)
	srvCmd.Dir, srvCmd.Env = clone, env
	srvCmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var slog procLog
	done, err := slog.start(srvCmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-srvCmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-srvCmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("server output:\n%s", slog.String())
		}
	})
	token := waitLog(t, &slog, done, func(s string) string { return patRE.FindString(s) })
	if !strings.Contains(slog.String(), "web password") || !strings.Contains(slog.String(), base) {
		t.Fatalf("banner without the password or URL:\n%s", slog.String())
	}

	walk = replaceExactly(t, walk, "http://127.0.0.1:8080", base)
	walk = replaceExactly(t, walk, "TOKEN=glpat-...", "TOKEN="+token)
	sh := exec.Command("bash", "-e", "-o", "pipefail", "-c", walk)
	sh.Dir, sh.Env = home, env
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}

	s := &server{t: t, URL: base}
	proj := "/api/v4/projects/" + url.PathEscape("group/app")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var pls []map[string]any
		s.callAs(token, "GET", proj+"/pipelines", nil, &pls)
		states := map[string]string{}
		for _, p := range pls {
			states[fmt.Sprint(p["source"])] = fmt.Sprint(p["status"])
		}
		if len(pls) == 2 && states["push"] == "success" && states["trigger"] == "success" {
			for _, p := range pls {
				var jobs []map[string]any
				s.callAs(token, "GET", fmt.Sprintf("%s/pipelines/%v/jobs", proj, p["id"]), nil, &jobs)
				if len(jobs) != 3 {
					t.Fatalf("pipeline %v has %d jobs", p["id"], len(jobs))
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipelines did not both succeed: %v\nwalkthrough output:\n%s", pls, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if git(t, clone, "rev-parse", "HEAD") != cloneHead {
		t.Fatal("the walkthrough committed into the Kiln clone")
	}
	if _, err := os.Stat(filepath.Join(clone, ".gitlab-ci.yml")); err == nil {
		t.Fatal("the walkthrough wrote .gitlab-ci.yml into the Kiln clone")
	}
	if !regexp.MustCompile(`"web_url":"` + regexp.QuoteMeta(base) + `/group/app"`).Match(out) {
		t.Errorf("project web_url is not on the server's URL:\n%s", out)
	}
}
