package gitrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestPushCloneAndEvents(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.create("group/sub/app")
	url := e.url("group/sub/app")

	if empty, err := e.store.IsEmpty(ctx, "group/sub/app"); err != nil || !empty {
		t.Fatalf("IsEmpty on new repo = %v, %v", empty, err)
	}
	// Cloning an empty repository works and warns only.
	e.git(t.TempDir(), "clone", "-q", url, "empty")

	w := e.workTree()
	c1 := e.commit(w, "first", map[string]string{".gitlab-ci.yml": "test:\n  script: [true]\n", "src/a.go": "package a\n"})
	c2 := e.commit(w, "second", map[string]string{"src/b.go": "package a\n"})
	tagObj := func(name string) string { return e.git(w, "rev-parse", "refs/tags/"+name) }

	steps := []struct {
		name string
		args []string
		prep func()
		want func() []RefUpdate
	}{
		{
			name: "create main",
			args: []string{"push", "-q", url, "main"},
			want: func() []RefUpdate { return []RefUpdate{{"refs/heads/main", ZeroSHA, c2}} },
		},
		{
			name: "create feature branch",
			args: []string{"push", "-q", url, c1 + ":refs/heads/feature/x"},
			want: func() []RefUpdate { return []RefUpdate{{"refs/heads/feature/x", ZeroSHA, c1}} },
		},
		{
			name: "update branch",
			args: []string{"push", "-q", url, c2 + ":refs/heads/feature/x"},
			want: func() []RefUpdate { return []RefUpdate{{"refs/heads/feature/x", c1, c2}} },
		},
		{
			name: "lightweight and annotated tags in one push",
			prep: func() {
				e.git(w, "tag", "v1.0", c1)
				e.git(w, "tag", "-a", "-m", "release", "v2.0", c2)
			},
			args: []string{"push", "-q", url, "v1.0", "v2.0"},
			want: func() []RefUpdate {
				return []RefUpdate{{"refs/tags/v1.0", ZeroSHA, c1}, {"refs/tags/v2.0", ZeroSHA, tagObj("v2.0")}}
			},
		},
		{
			name: "force push rewinds",
			args: []string{"push", "-q", "-f", url, c1 + ":refs/heads/feature/x"},
			want: func() []RefUpdate { return []RefUpdate{{"refs/heads/feature/x", c2, c1}} },
		},
		{
			name: "delete branch",
			args: []string{"push", "-q", url, ":refs/heads/feature/x"},
			want: func() []RefUpdate { return []RefUpdate{{"refs/heads/feature/x", c1, ZeroSHA}} },
		},
		{
			name: "no-op push reports nothing",
			args: []string{"push", "-q", url, "main"},
			want: func() []RefUpdate { return nil },
		},
	}
	for _, st := range steps {
		if st.prep != nil {
			st.prep()
		}
		e.git(w, st.args...)
		got := e.takeEvents()
		want := st.want()
		switch {
		case want == nil && len(got) != 0:
			t.Errorf("%s: unexpected onPush %v", st.name, got)
		case want != nil && (len(got) != 1 || !reflect.DeepEqual(got[0], want)):
			t.Errorf("%s: onPush = %v, want [%v]", st.name, got, want)
		}
	}

	if b, err := e.store.DefaultBranch(ctx, "group/sub/app"); err != nil || b != "main" {
		t.Errorf("DefaultBranch = %q, %v", b, err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	e.git(t.TempDir(), "clone", "-q", url, clone)
	if got := e.git(clone, "rev-parse", "HEAD"); got != c2 {
		t.Errorf("clone HEAD = %s, want %s", got, c2)
	}
	if data, err := os.ReadFile(filepath.Join(clone, "src", "b.go")); err != nil || string(data) != "package a\n" {
		t.Errorf("cloned file = %q, %v", data, err)
	}
	// Protocol v0 (no Git-Protocol header) must work too.
	e.git(t.TempDir(), "-c", "protocol.version=0", "clone", "-q", url, "v0")

	// In-process reads see what the external git process wrote.
	data, _, err := e.store.ReadFile(ctx, "group/sub/app", c2, "/src/b.go")
	if err != nil || string(data) != "package a\n" {
		t.Errorf("ReadFile after push = %q, %v", data, err)
	}
	tags, err := e.store.Tags(ctx, "group/sub/app")
	if err != nil || len(tags) != 2 || tags[1].SHA != c2 || !tags[1].Tag {
		t.Errorf("Tags = %+v, %v", tags, err)
	}
}

func TestFirstPushOfOtherBranchBecomesHEAD(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.create("app")
	w := e.workTree()
	c := e.commit(w, "init", map[string]string{"README": "hi\n"})
	e.git(w, "push", "-q", e.url("app"), "HEAD:refs/heads/develop")
	if b, err := e.store.DefaultBranch(ctx, "app"); err != nil || b != "develop" {
		t.Fatalf("DefaultBranch = %q, %v; want develop", b, err)
	}
	ev := e.takeEvents()
	if len(ev) != 1 || ev[0][0] != (RefUpdate{"refs/heads/develop", ZeroSHA, c}) {
		t.Errorf("events = %v", ev)
	}
	// A clone now checks out develop.
	clone := filepath.Join(t.TempDir(), "c")
	e.git(t.TempDir(), "clone", "-q", e.url("app"), clone)
	if b := e.git(clone, "symbolic-ref", "--short", "HEAD"); b != "develop" {
		t.Errorf("clone checked out %q", b)
	}
	// Later pushes don't move HEAD.
	e.git(w, "push", "-q", e.url("app"), "HEAD:refs/heads/aaa")
	if b, _ := e.store.DefaultBranch(ctx, "app"); b != "develop" {
		t.Errorf("DefaultBranch moved to %q", b)
	}
}

func TestHostileRefPushRefused(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.create("app")
	w := e.workTree()
	e.commit(w, "init", map[string]string{"README": "hi\n"})
	e.git(w, "push", "-q", e.url("app"), "main")
	e.takeEvents()

	for _, ref := range []string{
		"refs/heads/--upload-pack=touch${IFS}x",
		"refs/heads/-x",
		"refs/tags/a/-b",
		"refs/heads/HEAD",
		"refs/tags/HEAD",
		"refs/heads/refs/heads/main", // would read as main wherever full refs are accepted
		"refs/heads/refs/tags/v1",
		"refs/tags/refs/heads/x",
		"refs/heads/0123456789abcdef0123456789abcdef01234567", // SHA-1-like
		"refs/tags/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", // SHA-256-like
		"refs/pipelines/1",
	} {
		out, err := e.tryGit(w, "push", e.url("app"), "HEAD:"+ref)
		if err == nil {
			t.Errorf("push of %q succeeded:\n%s", ref, out)
		} else if !strings.Contains(out, "kiln: refusing") {
			t.Errorf("push of %q failed without the hook's reason:\n%s", ref, out)
		}
	}
	if ev := e.takeEvents(); len(ev) != 0 {
		t.Errorf("refused pushes produced events: %v", ev)
	}
	branches, err := e.store.Branches(ctx, "app")
	if err != nil || len(branches) != 1 || branches[0].Name != "main" {
		t.Errorf("Branches after refused pushes = %+v, %v", branches, err)
	}
	// Names that merely look close are fine.
	for _, ref := range []string{"refs/heads/0123456789abcdef0123456789abcdef0123456", "refs/heads/head", "refs/heads/x/refs/y", "refs/tags/HEADS"} {
		if out, err := e.tryGit(w, "push", e.url("app"), "HEAD:"+ref); err != nil {
			t.Errorf("push of %q refused:\n%s", ref, out)
		}
	}
	e.takeEvents()
	// A mixed push is refused atomically: the valid ref is not created either.
	if _, err := e.tryGit(w, "push", e.url("app"), "HEAD:refs/heads/ok", "HEAD:refs/heads/-bad"); err == nil {
		t.Error("mixed push succeeded")
	}
	if _, err := e.store.ResolveRef(ctx, "app", "ok"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("ResolveRef(ok) after refused mixed push: %v", err)
	}
}

func TestReadOnlyRefusesPush(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	w := e.workTree()
	e.commit(w, "init", map[string]string{"README": "hi\n"})
	e.git(w, "push", "-q", e.url("app"), "main")
	e.takeEvents()
	e.readOnly.Store(true)

	out, err := e.tryGit(w, "push", e.url("app"), "HEAD:refs/heads/other")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("read-only push: err=%v out=%s", err, out)
	}
	// Clone still works read-only.
	e.git(t.TempDir(), "clone", "-q", e.url("app"), "c")

	for _, tc := range []struct {
		method, rest string
		want         int
	}{
		{"GET", "/info/refs?service=git-receive-pack", http.StatusForbidden},
		{"POST", "/git-receive-pack", http.StatusForbidden},
		{"GET", "/info/refs?service=git-upload-pack", http.StatusOK},
		{"GET", "/info/refs", http.StatusForbidden}, // dumb protocol
		{"GET", "/HEAD", http.StatusNotFound},
		{"GET", "/objects/info/packs", http.StatusNotFound},
		{"GET", "/config", http.StatusNotFound},
		{"GET", "/git-upload-pack", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, e.url("app")+tc.rest, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.rest, resp.StatusCode, tc.want)
		}
	}
	if ev := e.takeEvents(); len(ev) != 0 {
		t.Errorf("events: %v", ev)
	}
}

func TestServeGitHostileRepoPaths(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	for _, repo := range []string{"../app", "app/../app", ".kiln/hooks", "", "/app", "missing", "app.git"} {
		rec := &bufferedResponse{header: make(http.Header)}
		req, _ := http.NewRequest("GET", "/x/info/refs?service=git-upload-pack", nil)
		e.store.ServeGit(rec, req, repo, "/info/refs", true, nil)
		if rec.status != http.StatusNotFound {
			t.Errorf("ServeGit(%q) status = %d, want 404", repo, rec.status)
		}
	}
}

func TestPushSizeLimit(t *testing.T) {
	e := newTestEnv(t, WithMaxPushSize(64<<10))
	e.create("app")
	w := e.workTree()
	big := make([]byte, 512<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32()) // incompressible
	}
	e.commit(w, "big", map[string]string{"blob.bin": string(big)})
	out, err := e.tryGit(w, "push", e.url("app"), "main")
	if err == nil || !strings.Contains(out, "413") {
		t.Errorf("oversized push: err=%v out=%s", err, out)
	}
	if ev := e.takeEvents(); len(ev) != 0 {
		t.Errorf("events: %v", ev)
	}
}

// TestGzipUploadPack sends a gzip-compressed protocol-v0 fetch request by
// hand, as git does for large negotiations.
func TestGzipUploadPack(t *testing.T) {
	e := newTestEnv(t)
	e.create("app")
	w := e.workTree()
	c := e.commit(w, "init", map[string]string{"README": "hi\n"})
	e.git(w, "push", "-q", e.url("app"), "main")

	pkt := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	reqBody := pkt("want "+c+" ofs-delta\n") + "0000" + pkt("done\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(reqBody))
	zw.Close()

	req, _ := http.NewRequest("POST", e.url("app")+"/git-upload-pack", &gz)
	req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("PACK")) {
		t.Errorf("status %d, body %q", resp.StatusCode, body[:min(len(body), 200)])
	}

	req, _ = http.NewRequest("POST", e.url("app")+"/git-upload-pack", strings.NewReader("x"))
	req.Header.Set("Content-Encoding", "br")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("unknown encoding status = %d", resp.StatusCode)
	}
}

// TestConcurrentReadsDuringPushes exercises cache invalidation and the
// per-repository locking under the race detector.
func TestConcurrentReadsDuringPushes(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.create("app")
	w := e.workTree()
	first := e.commit(w, "c0", map[string]string{"n.txt": "0\n"})
	e.git(w, "push", "-q", e.url("app"), "main")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ref, err := e.store.ResolveRef(ctx, "app", "main")
				if err != nil {
					errs <- err
					return
				}
				if _, _, err := e.store.ReadFile(ctx, "app", ref.SHA, "n.txt"); err != nil {
					errs <- fmt.Errorf("ReadFile at %s: %w", ref.SHA, err)
					return
				}
				if _, _, err := e.store.ReadFile(ctx, "app", first, "n.txt"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var last string
	for i := 1; i <= 6; i++ {
		last = e.commit(w, fmt.Sprintf("c%d", i), map[string]string{"n.txt": fmt.Sprintf("%d\n", i)})
		e.git(w, "push", "-q", e.url("app"), "main")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	data, _, err := e.store.ReadFile(ctx, "app", last, "n.txt")
	if err != nil || string(data) != "6\n" {
		t.Errorf("final ReadFile = %q, %v", data, err)
	}
}
