// Package gitrepo_test benchmarks the in-process read path of
// internal/gitrepo (the per-CI-trigger hot path) against a real repository
// built with the git CLI and fully packed, as a long-lived server repo is.
//
//	go test -run '^$' -bench . ./bench/gitrepo/
package gitrepo_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/gitrepo"
)

const repoName = "bench/app"

type benchRepo struct {
	store *gitrepo.Store
	head  string
}

func setup(b *testing.B) benchRepo {
	b.Helper()
	root := b.TempDir()
	store, err := gitrepo.New(filepath.Join(root, "repos"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	ctx := context.Background()
	if err := store.Create(ctx, repoName); err != nil {
		b.Fatal(err)
	}
	work := filepath.Join(root, "work")
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = []string{
			"HOME=" + root, "PATH=" + os.Getenv("PATH"),
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com",
			"GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com",
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		b.Fatal(err)
	}
	git("init", "-q", "-b", "main")
	// ~600 files in nested directories, 40 commits of history, 20 branches
	// and 20 annotated tags.
	for c := range 40 {
		for d := range 10 {
			dir := filepath.Join(work, "pkg", fmt.Sprintf("mod%02d", d), "internal")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range 15 {
				if f%5 != c%5 && c > 0 {
					continue
				}
				body := fmt.Sprintf("package mod%02d\n// rev %d\nvar X%d = %d\n", d, c, f, c*f)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.go", f)), []byte(body), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
		ci := fmt.Sprintf("stages: [test]\ntest:\n  script: [\"make test\"]\n# rev %d\n", c)
		if err := os.WriteFile(filepath.Join(work, ".gitlab-ci.yml"), []byte(ci), 0o644); err != nil {
			b.Fatal(err)
		}
		git("add", "-A")
		git("commit", "-q", "-m", fmt.Sprintf("commit %d", c))
		if c%2 == 0 {
			git("branch", fmt.Sprintf("feature/b%02d", c))
			git("tag", "-a", "-m", "t", fmt.Sprintf("v1.%d.0", c))
		}
	}
	bare := filepath.Join(store.Root(), "bench", "app.git")
	git("push", "-q", bare, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	git("--git-dir="+bare, "gc", "-q")
	return benchRepo{store: store, head: git("rev-parse", "HEAD")}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkResolveRef(b *testing.B) {
	r := setup(b)
	ctx := context.Background()
	for _, name := range []string{"main", "feature/b20", "v1.20.0"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := r.store.ResolveRef(ctx, repoName, name); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
	b.Run("main/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.store.ResolveRef(ctx, repoName, "main"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
}

func BenchmarkReadFile(b *testing.B) {
	r := setup(b)
	ctx := context.Background()
	for _, path := range []string{".gitlab-ci.yml", "pkg/mod07/internal/f13.go"} {
		b.Run(strings.ReplaceAll(path, "/", "_"), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := r.store.ReadFile(ctx, repoName, r.head, path); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
	b.Run("ci-config/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := r.store.ReadFile(ctx, repoName, r.head, ".gitlab-ci.yml"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
}

// BenchmarkListRefs lists refs the way a job's fetch (ls-refs for one
// pipeline ref) and the branches API do, on the benchmark repository plus
// 1,000 pipeline refs, loose (fresh pipelines) and packed (after gc).
func BenchmarkListRefs(b *testing.B) {
	r := setup(b)
	ctx := context.Background()
	bare := filepath.Join(r.store.Root(), "bench", "app.git")
	for i := range 1000 {
		if err := r.store.UpdateRef(ctx, repoName, fmt.Sprintf("refs/pipelines/%d", i+1), r.head); err != nil {
			b.Fatal(err)
		}
	}
	pkt := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	body := pkt("command=ls-refs\n") + pkt("agent=git/2.x\n") + "0001" +
		pkt("peel\n") + pkt("symrefs\n") + pkt("ref-prefix refs/pipelines/500\n") + "0000"
	for _, layout := range []string{"loose", "packed"} {
		if layout == "packed" {
			out, err := exec.Command("git", "--git-dir="+bare, "pack-refs", "--all").CombinedOutput()
			if err != nil {
				b.Fatalf("pack-refs: %v: %s", err, out)
			}
		}
		b.Run(layout+"/ls-refs", func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("POST", "/bench/app.git/git-upload-pack", strings.NewReader(body))
				req.Header.Set("Git-Protocol", "version=2")
				req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
				w := httptest.NewRecorder()
				r.store.ServeGit(w, req, repoName, "/git-upload-pack", false, nil)
				if w.Code != 200 || !strings.Contains(w.Body.String(), " refs/pipelines/500\n") {
					b.Fatalf("ls-refs: %d %q", w.Code, w.Body.String())
				}
			}
			reportRate(b)
		})
		b.Run(layout+"/branches", func(b *testing.B) {
			for b.Loop() {
				if br, err := r.store.Branches(ctx, repoName); err != nil || len(br) == 0 {
					b.Fatal(br, err)
				}
			}
			reportRate(b)
		})
	}
}
