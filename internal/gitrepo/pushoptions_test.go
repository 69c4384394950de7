package gitrepo

import (
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// git push -o reaches ServeGitPush's callback, push by push, with the real
// git client over smart HTTP.
func TestPushOptions(t *testing.T) {
	e := newTestEnv(t)
	e.create("grp/app")
	var (
		mu       sync.Mutex
		pushes   []Push
		inflight sync.WaitGroup
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		p := strings.TrimPrefix(r.URL.Path, "/")
		i := strings.Index(p, ".git/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		e.store.ServeGitPush(w, r, p[:i], p[i+4:], true, func(push Push) {
			mu.Lock()
			pushes = append(pushes, push)
			mu.Unlock()
		})
	}))
	defer srv.Close()
	take := func() []Push {
		inflight.Wait()
		mu.Lock()
		defer mu.Unlock()
		out := pushes
		pushes = nil
		return out
	}
	url := srv.URL + "/grp/app.git"
	w := e.workTree()
	e.commit(w, "one", map[string]string{"a": "1"})
	e.git(w, "push", "-q", "-o", "ci.skip", "-o", "note=with spaces = and $HOME", url, "HEAD:refs/heads/main")
	got := take()
	if len(got) != 1 || len(got[0].Updates) != 1 || !reflect.DeepEqual(got[0].Options, []string{"ci.skip", "note=with spaces = and $HOME"}) {
		t.Fatalf("push with options: %+v", got)
	}
	// The next push has none: nothing carries over.
	e.commit(w, "two", map[string]string{"a": "2"})
	e.git(w, "push", "-q", url, "HEAD:refs/heads/main")
	got = take()
	if len(got) != 1 || len(got[0].Options) != 0 {
		t.Fatalf("push without options: %+v", got)
	}
	// Fetches go through ServeGitPush untouched.
	clone := t.TempDir()
	e.git(clone, "clone", "-q", url, ".")
	if got := take(); len(got) != 0 {
		t.Fatalf("clone reported pushes: %+v", got)
	}
	// No per-push files are left behind.
	ents, _ := os.ReadDir(e.store.tmpDir)
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), "push-options-") {
			t.Fatalf("left %s", en.Name())
		}
	}
	// Plain ServeGit (no options wanted) still accepts a push with options.
	e.commit(w, "three", map[string]string{"a": "3"})
	e.git(w, "push", "-q", "-o", "ci.skip", e.url("grp/app"), "HEAD:refs/heads/main")
	if ev := e.takeEvents(); len(ev) != 1 {
		t.Fatalf("ServeGit events: %v", ev)
	}
}
