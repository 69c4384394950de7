package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRepoPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"app", true},
		{"group/sub/app", true},
		{"Group_1/my-app.v2", true},
		{"_x/y", true},
		{"", false},
		{"/abs/app", false},
		{"../app", false},
		{"group/../app", false},
		{"group/..", false},
		{"a..b", false},
		{"group//app", false},
		{"group/app/", false},
		{".hidden", false},
		{"group/.git", false},
		{"-app", false},
		{"group/-rf", false},
		{"app.git", false},
		{"app.GIT", false},
		{"group.git/app", false},
		{"feed.atom", false},
		{"a b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"ümlaut", false},
		{`a\b`, false},
		{"a:b", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tc := range tests {
		err := validateRepoPath(tc.path)
		if tc.ok != (err == nil) {
			t.Errorf("validateRepoPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("validateRepoPath(%q) error %v does not wrap ErrInvalidPath", tc.path, err)
		}
	}
}

func TestCreateDeleteRename(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	s := e.store

	if err := s.Create(ctx, "g/app"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "g", "app.git", "hooks")); err == nil {
		t.Error("Create copied template hooks")
	}
	if b, err := s.DefaultBranch(ctx, "g/app"); err != nil || b != "main" {
		t.Errorf("new repo DefaultBranch = %q, %v", b, err)
	}
	steps := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"create twice", func() error { return s.Create(ctx, "g/app") }, ErrRepoExists},
		{"create hostile", func() error { return s.Create(ctx, "../escape") }, ErrInvalidPath},
		{"delete missing", func() error { return s.Delete(ctx, "g/none") }, ErrRepoNotFound},
		{"rename missing", func() error { return s.Rename(ctx, "g/none", "g/x") }, ErrRepoNotFound},
		{"create other", func() error { return s.Create(ctx, "h/other") }, nil},
		{"rename onto existing", func() error { return s.Rename(ctx, "g/app", "h/other") }, ErrRepoExists},
		{"rename to hostile", func() error { return s.Rename(ctx, "g/app", "../x") }, ErrInvalidPath},
		{"rename", func() error { return s.Rename(ctx, "g/app", "new/group/app2") }, nil},
		{"old name gone", func() error { _, err := s.DefaultBranch(ctx, "g/app"); return err }, ErrRepoNotFound},
		{"new name works", func() error { _, err := s.DefaultBranch(ctx, "new/group/app2"); return err }, nil},
		{"delete", func() error { return s.Delete(ctx, "new/group/app2") }, nil},
		{"deleted is gone", func() error { _, err := s.IsEmpty(ctx, "new/group/app2"); return err }, ErrRepoNotFound},
		{"recreate after delete", func() error { return s.Create(ctx, "new/group/app2") }, nil},
	}
	for _, st := range steps {
		if err := st.op(); !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
	}
	// Empty group directories are pruned.
	if _, err := os.Stat(filepath.Join(s.Root(), "g")); !os.IsNotExist(err) {
		t.Errorf("empty group dir left behind: %v", err)
	}

	// A pushed repository keeps its content across rename, and the cache
	// does not serve the old location.
	e.create("r/one")
	w := e.workTree()
	c := e.commit(w, "x", map[string]string{"f": "1\n"})
	e.git(w, "push", "-q", e.url("r/one"), "main")
	if _, err := s.ResolveRef(ctx, "r/one", "main"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(ctx, "r/one", "r/two"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.ResolveRef(ctx, "r/two", "main"); err != nil || r.SHA != c {
		t.Errorf("after rename: %+v, %v", r, err)
	}
	if _, err := s.ResolveRef(ctx, "r/one", "main"); !errors.Is(err, ErrRepoNotFound) {
		t.Errorf("old name after rename: %v", err)
	}
}

func TestSymlinksOutOfRoot(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	s := e.store

	// A real repository outside root, reachable only through symlinks.
	outside := t.TempDir()
	e.git(outside, "init", "-q", "--bare", "app.git")
	if err := os.Symlink(outside, filepath.Join(s.Root(), "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "app.git"), filepath.Join(s.Root(), "link.git")); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"evil/app", "link"} {
		if _, err := s.IsEmpty(ctx, repo); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("IsEmpty(%q) through symlink: %v", repo, err)
		}
		if err := s.Delete(ctx, repo); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Delete(%q) through symlink: %v", repo, err)
		}
	}
	if err := s.Create(ctx, "evil/new"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Create under symlinked group: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "new.git")); !os.IsNotExist(err) {
		t.Error("Create wrote outside root")
	}
	if _, err := os.Stat(filepath.Join(outside, "app.git", "HEAD")); err != nil {
		t.Error("Delete removed the outside repository")
	}
}

func TestHandleCacheEviction(t *testing.T) {
	e := newTestEnv(t, WithMaxOpenRepos(2))
	ctx := context.Background()
	w := e.workTree()
	e.commit(w, "x", map[string]string{"f": "1\n"})
	for _, r := range []string{"a", "b", "c"} {
		e.create(r)
		e.git(w, "push", "-q", e.url(r), "main")
	}
	for range 3 {
		for _, r := range []string{"a", "b", "c"} {
			if _, err := e.store.ResolveRef(ctx, r, "main"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(e.store.handles); n > 2 {
		t.Errorf("%d handles cached, limit 2", n)
	}
	// Unknown names are not cached.
	for i := range 10 {
		e.store.IsEmpty(ctx, "missing"+strings.Repeat("x", i))
	}
	if n := len(e.store.handles); n > 2 {
		t.Errorf("%d handles cached after misses", n)
	}
}
