package gitrepo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRefListingUnderConcurrentWriters: while other writers create and
// delete refs/pipelines/N (through a second Store on the same root, as a
// second replica does, so the in-process write lock does not serialize
// them), every listing — ls-refs, branches, the push snapshot — still shows
// every ref that existed before it started, and no writer fails on another
// writer's lock file. On a packed repository `git pack-refs` also runs
// meanwhile, moving loose refs into packed-refs.
func TestRefListingUnderConcurrentWriters(t *testing.T) {
	for _, packed := range []bool{false, true} {
		name := "loose"
		if packed {
			name = "packed"
		}
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.create("app")
			w := e.workTree()
			sha := e.commit(w, "one", map[string]string{"a": "1\n"})
			e.git(w, "push", "-q", e.url("app"), "main")
			ctx := context.Background()
			dir := e.store.repoDir("app")
			const stable = 40
			for i := 1; i <= stable; i++ {
				if err := e.store.UpdateRef(ctx, "app", fmt.Sprintf("refs/pipelines/%d", i), sha); err != nil {
					t.Fatal(err)
				}
			}
			if packed {
				e.git(dir, "pack-refs", "--all")
			}
			other, err := New(e.store.Root(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()

			deadline := time.Now().Add(3 * time.Second)
			var (
				wg        sync.WaitGroup
				writes    atomic.Int64
				listings  atomic.Int64
				fallbacks atomic.Int64
				errMu     sync.Mutex
				errs      []string
			)
			fail := func(format string, args ...any) {
				errMu.Lock()
				defer errMu.Unlock()
				if len(errs) < 10 {
					errs = append(errs, fmt.Sprintf(format, args...))
				}
			}
			// Writers: each owns a range of pipeline ids above the stable ones.
			for wr := range 3 {
				st := e.store
				if wr > 0 {
					st = other
				}
				wg.Go(func() {
					for n := 0; time.Now().Before(deadline); n++ {
						ref := fmt.Sprintf("refs/pipelines/%d", 1000*(wr+1)+n%50)
						if err := st.UpdateRef(ctx, "app", ref, sha); err != nil {
							fail("writer %d: UpdateRef %s: %v", wr, ref, err)
							return
						}
						if n%2 == 1 {
							if err := st.DeleteRef(ctx, "app", ref); err != nil {
								fail("writer %d: DeleteRef %s: %v", wr, ref, err)
								return
							}
						}
						writes.Add(1)
					}
				})
			}
			if packed {
				wg.Go(func() {
					for time.Now().Before(deadline) {
						_, _ = e.tryGit(dir, "pack-refs", "--all") // may lose a lock race; fine
						time.Sleep(20 * time.Millisecond)
					}
				})
			}
			body := lsRefsBody([]string{"agent=git/2.x"}, []string{"ref-prefix refs/pipelines/", "ref-prefix refs/heads/"})
			for range 2 {
				wg.Go(func() {
					for time.Now().Before(deadline) {
						req, ok := readLsRefs(strings.NewReader(body))
						if !ok {
							fail("bad request body")
							return
						}
						out, ok := e.store.lsRefs(ctx, "app", dir, req)
						if !ok {
							fallbacks.Add(1)
						} else {
							for i := 1; i <= stable; i++ {
								if !bytes.Contains(out, fmt.Appendf(nil, "%s refs/pipelines/%d\n", sha, i)) {
									fail("ls-refs is missing refs/pipelines/%d", i)
								}
							}
							if !bytes.Contains(out, []byte(" refs/heads/main\n")) {
								fail("ls-refs is missing refs/heads/main")
							}
						}
						snap, err := e.store.refSnapshot(ctx, "app")
						if err != nil {
							fail("refSnapshot: %v", err)
						}
						for i := 1; i <= stable; i++ {
							if snap[fmt.Sprintf("refs/pipelines/%d", i)] != sha {
								fail("snapshot is missing refs/pipelines/%d", i)
							}
						}
						br, err := e.store.Branches(ctx, "app")
						if err != nil || len(br) != 1 {
							fail("Branches = %v, %v", br, err)
						}
						listings.Add(1)
					}
				})
			}
			wg.Wait()
			for _, m := range errs {
				t.Error(m)
			}
			t.Logf("%d ref writes, %d listings, %d ls-refs fallbacks to git", writes.Load(), listings.Load(), fallbacks.Load())
			if writes.Load() < 50 || listings.Load() < 10 {
				t.Errorf("too little concurrency to mean anything: %d writes, %d listings", writes.Load(), listings.Load())
			}
			if fallbacks.Load() > 0 {
				t.Errorf("ls-refs fell back to git %d times (lock files must be skipped, not refused)", fallbacks.Load())
			}
		})
	}
}

// TestReadRefsRules: lock files and dot files are not refs, loose refs
// shadow packed ones, broken loose refs are skipped, symbolic refs stay
// symbolic.
func TestReadRefsRules(t *testing.T) {
	dir := t.TempDir()
	const a, b = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := writeFileAtomicMkdir(p, content); err != nil {
			t.Fatal(err)
		}
	}
	write("packed-refs", "# pack-refs with: peeled fully-peeled sorted \n"+a+" refs/heads/main\n"+a+" refs/tags/v1\n^"+b+"\n"+a+" refs/pipelines/1\n")
	write("refs/heads/main", b+"\n")
	write("refs/pipelines/2.lock", "")
	write("refs/pipelines/3.lock", b+"\n")
	write("refs/pipelines/.hidden", b+"\n")
	write("refs/pipelines/4", "")
	write("refs/pipelines/5", "garbage\n")
	write("refs/remotes/origin/HEAD", "ref: refs/remotes/origin/main\n")
	refs, err := readRefs(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range refs {
		got = append(got, r.String())
	}
	want := []string{
		b + " refs/heads/main",
		a + " refs/pipelines/1",
		"ref: refs/remotes/origin/main refs/remotes/origin/HEAD",
		a + " refs/tags/v1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("readRefs:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	write("packed-refs", "nonsense\n")
	if _, err := readRefs(dir); err == nil {
		t.Errorf("malformed packed-refs: err = %v", err)
	}
}

func writeFileAtomicMkdir(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(content), 0o644)
}
