package gitrepo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func pktLine(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func lsRefsBody(caps, args []string) string {
	var b strings.Builder
	b.WriteString(pktLine("command=ls-refs\n"))
	for _, c := range caps {
		b.WriteString(pktLine(c + "\n"))
	}
	b.WriteString("0001")
	for _, a := range args {
		b.WriteString(pktLine(a + "\n"))
	}
	b.WriteString("0000")
	return b.String()
}

// gitUploadPack runs git's own upload-pack on the request.
func gitUploadPack(t *testing.T, dir, body string) string {
	t.Helper()
	cmd := exec.Command("git", "upload-pack", "--stateless-rpc", dir)
	cmd.Env = append(os.Environ(), "GIT_PROTOCOL=version=2", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	cmd.Stdin = strings.NewReader(body)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	_ = cmd.Run()
	return out.String() + stderr.String()
}

func postUploadPack(t *testing.T, url, gp, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/git-upload-pack", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	if gp != "" {
		req.Header.Set("Git-Protocol", gp)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLsRefsMatchesGit compares the in-process ls-refs with git's, byte for
// byte, over loose and packed refs, annotated and chained tags, prefixes
// and an unborn or detached HEAD.
func TestLsRefsMatchesGit(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	w := e.workTree()
	c1 := e.commit(w, "one", map[string]string{"a": "1\n"})
	e.git(w, "tag", "light")
	e.git(w, "tag", "-a", "-m", "annotated", "v1")
	e.git(w, "tag", "-a", "-m", "tag of a tag", "v1-outer", "v1")
	e.git(w, "branch", "feature/x")
	c2 := e.commit(w, "two", map[string]string{"b": "2\n"})
	e.git(w, "push", "-q", e.url("app"), "main", "feature/x", "--tags")
	ctx := context.Background()
	for i, sha := range map[int]string{1: c1, 10: c2, 2: c2} {
		if err := e.store.UpdateRef(ctx, "app", fmt.Sprintf("refs/pipelines/%d", i), sha); err != nil {
			t.Fatal(err)
		}
	}
	dir := e.store.repoDir("app")

	requests := [][]string{
		nil,
		{"peel", "symrefs", "unborn"},
		{"peel", "symrefs", "unborn", "ref-prefix HEAD", "ref-prefix refs/heads/", "ref-prefix refs/tags/"},
		{"peel", "symrefs", "unborn", "ref-prefix refs/pipelines/1", "ref-prefix refs/refs/pipelines/1", "ref-prefix refs/heads/", "ref-prefix refs/tags/", "ref-prefix refs/tags/"},
		{"symrefs", "ref-prefix HEAD"},
		{"peel", "ref-prefix refs/tags/v"},
		{"ref-prefix refs/nothing/"},
	}
	check := func(stage string) {
		t.Helper()
		for _, args := range requests {
			for _, caps := range [][]string{nil, {"agent=git/2.39.5", "object-format=sha1"}} {
				body := lsRefsBody(caps, args)
				req, ok := readLsRefs(strings.NewReader(body))
				if !ok {
					t.Fatalf("%s: request %q not understood", stage, body)
				}
				got, ok := e.store.lsRefs(ctx, "app", dir, req)
				if !ok {
					t.Fatalf("%s %v: fell back to git", stage, args)
				}
				if len(args) == 3 && stage == "loose" && (!bytes.Contains(got, []byte(" peeled:")) || !bytes.Contains(got, []byte("HEAD symref-target:refs/heads/main")) || !bytes.Contains(got, []byte("refs/tags/v1-outer peeled:"+c1))) {
					t.Errorf("no peeled tags or symref in %q", got)
				}
				if stage == "unborn HEAD" && len(args) == 3 && !bytes.HasPrefix(got, []byte("0030unborn HEAD symref-target:refs/heads/unborn\n")) {
					t.Errorf("no unborn HEAD in %q", got)
				}
				if want := gitUploadPack(t, dir, body); string(got) != want {
					t.Errorf("%s %v:\n got %q\nwant %q", stage, args, got, want)
				}
				code, viaHTTP := postUploadPack(t, e.url("app"), "version=2", body)
				if code != 200 || viaHTTP != string(got) {
					t.Errorf("%s %v over HTTP: %d %q", stage, args, code, viaHTTP)
				}
			}
		}
	}
	check("loose")
	e.git(dir, "pack-refs", "--all")
	check("packed")
	if err := e.store.UpdateRef(ctx, "app", "refs/pipelines/1", c2); err != nil { // loose over packed
		t.Fatal(err)
	}
	check("mixed")
	os.WriteFile(filepath.Join(dir, "HEAD"), []byte("ref: refs/heads/unborn\n"), 0o644)
	check("unborn HEAD")
	os.WriteFile(filepath.Join(dir, "HEAD"), []byte(c1+"\n"), 0o644)
	check("detached HEAD")
}

// TestLsRefsFallsBackToGit: requests outside the understood subset, and
// refs git would treat specially, are answered by git itself.
func TestLsRefsFallsBackToGit(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	w := e.workTree()
	e.commit(w, "one", map[string]string{"a": "1\n"})
	e.git(w, "push", "-q", e.url("app"), "main")
	dir := e.store.repoDir("app")
	for _, body := range []string{
		lsRefsBody([]string{"object-format=sha256"}, nil),
		lsRefsBody(nil, []string{"bogus"}),
		lsRefsBody([]string{"no-such-capability"}, nil),
		pktLine("command=ls-refs\n") + "0000",
	} {
		if _, ok := readLsRefs(strings.NewReader(body)); ok {
			t.Errorf("%q understood", body)
		}
		code, got := postUploadPack(t, e.url("app"), "version=2", body)
		want := gitUploadPack(t, dir, body)
		// git reports protocol errors on stderr and as an ERR packet.
		if code != 200 && code != 500 || (code == 200 && !strings.HasPrefix(want, got)) {
			t.Errorf("%q: %d %q, git says %q", body, code, got, want)
		}
	}
	// A ref to a missing object: git leaves it out; so do we, via git.
	os.WriteFile(filepath.Join(dir, "refs", "heads", "broken"), []byte(strings.Repeat("ab", 20)+"\n"), 0o644)
	body := lsRefsBody(nil, []string{"peel", "symrefs"})
	req, _ := readLsRefs(strings.NewReader(body))
	if _, ok := e.store.lsRefs(context.Background(), "app", dir, req); ok {
		t.Error("answered in-process despite a broken ref")
	}
	if _, got := postUploadPack(t, e.url("app"), "version=2", body); got != gitUploadPack(t, dir, body) {
		t.Errorf("broken ref: %q", got)
	}
}

// TestV2CapabilitiesCached: the v2 advertisement is git's, served from the
// cache after the first request; v0 still lists refs.
func TestV2CapabilitiesCached(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	e.create("other")
	get := func(repo, gp string) (http.Header, string) {
		req, _ := http.NewRequest("GET", e.url(repo)+"/info/refs?service=git-upload-pack", nil)
		if gp != "" {
			req.Header.Set("Git-Protocol", gp)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return resp.Header, string(b)
	}
	cmd := exec.Command("git", "upload-pack", "--advertise-refs", "--stateless-rpc", e.store.repoDir("app"))
	cmd.Env = append(os.Environ(), "GIT_PROTOCOL=version=2", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for i, repo := range []string{"app", "app", "other"} {
		h, got := get(repo, "version=2")
		if got != string(want) || h.Get("Content-Type") != "application/x-git-upload-pack-advertisement" || h.Get("Cache-Control") != gitNoCache {
			t.Fatalf("request %d: %q %v", i, got, h)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.store.root, stateDir, "upload-pack-v2"))
	if len(ents) != 1 {
		t.Errorf("%d cache entries for identical configs", len(ents))
	}
	w := e.workTree()
	c := e.commit(w, "one", map[string]string{"a": "1\n"})
	e.git(w, "push", "-q", e.url("app"), "main")
	if _, got := get("app", ""); !strings.Contains(got, "# service=git-upload-pack") || !strings.Contains(got, c+" refs/heads/main") {
		t.Errorf("v0 advertisement: %q", got)
	}
	// Real clients over both protocol versions, clone and incremental fetch.
	for _, v := range []string{"0", "1", "2"} {
		dst := filepath.Join(t.TempDir(), "c")
		e.git("", "-c", "protocol.version="+v, "clone", "-q", e.url("app"), dst)
		if got := e.git(dst, "rev-parse", "HEAD"); got != c {
			t.Errorf("v%s clone HEAD = %s", v, got)
		}
		c2 := e.commit(w, "more "+v, map[string]string{"b": v + "\n"})
		e.git(w, "push", "-q", e.url("app"), "main")
		e.git(dst, "-c", "protocol.version="+v, "fetch", "-q", "--depth", "1", "origin", "+refs/heads/*:refs/remotes/origin/*")
		if got := e.git(dst, "rev-parse", "origin/main"); got != c2 {
			t.Errorf("v%s fetch = %s, want %s", v, got, c2)
		}
		c = c2
		if out := e.git(dst, "-c", "protocol.version="+v, "ls-remote", "--symref", "origin"); !strings.Contains(out, "ref: refs/heads/main\tHEAD") {
			t.Errorf("v%s ls-remote: %s", v, out)
		}
	}
}
