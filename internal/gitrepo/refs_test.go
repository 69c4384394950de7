package gitrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture is a hosted repository with two commits, branches and tags,
// pushed over HTTP with the git CLI.
type fixture struct {
	*testEnv
	repo   string
	c1, c2 string
	tag2   string // annotated tag object of v2.0
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	e := newTestEnv(t, opts...)
	f := &fixture{testEnv: e, repo: "group/app"}
	e.create(f.repo)
	w := e.workTree()
	f.c1 = e.commit(w, "Add CI\n\nLonger description\nover two lines.\n", map[string]string{
		".gitlab-ci.yml":           "test:\n  script: [true]\n",
		"src/a.go":                 "package a\n",
		"src/sub/b.go":             "package sub\n",
		"docs/readme.md":           "# docs\n",
		".hidden/conf.yml":         "x: 1\n",
		"deep/a/b/c/file.json":     "{}\n",
		"Dockerfile":               "FROM scratch\n",
		"weird name [1].txt":       "brackets\n",
		"big.bin":                  strings.Repeat("x", 4096),
		"config/settings.yaml":     "a: b\n",
		"config/settings.yml":      "a: b\n",
		"spec/models/user_spec.rb": "describe\n",
	})
	if err := os.Symlink(".gitlab-ci.yml", filepath.Join(w, "link.yml")); err != nil {
		t.Fatal(err)
	}
	e.git(w, "update-index", "--add", "--cacheinfo", "160000,"+f.c1+",vendor/submod")
	e.git(w, "add", "link.yml")
	e.git(w, "commit", "-q", "--amend", "--no-edit")
	f.c1 = e.git(w, "rev-parse", "HEAD")
	e.git(w, "mv", "deep/a/b/c/file.json", "deep/moved.json")
	f.c2 = e.commit(w, "Second", map[string]string{
		"src/a.go":       "package a // changed\n",
		"docs/readme.md": "",
		"src/new.txt":    "new\n",
	})
	e.git(w, "branch", "feature/x", f.c1)
	e.git(w, "branch", "v1.0", f.c2)
	e.git(w, "branch", "release-1.2.3", f.c1)
	e.git(w, "tag", "v1.0", f.c1)
	e.git(w, "tag", "-a", "-m", "two", "v2.0", f.c2)
	e.git(w, "tag", "-a", "-m", "nested", "v2.0-nested", "v2.0")
	e.git(w, "tag", "tree-tag", f.c1+"^{tree}")
	e.git(w, "push", "-q", e.url(f.repo), "main", "feature/x", "refs/heads/v1.0", "release-1.2.3",
		"refs/tags/v1.0", "v2.0", "v2.0-nested", "tree-tag")
	f.tag2 = e.git(w, "rev-parse", "refs/tags/v2.0")
	e.takeEvents()
	return f
}

func TestResolveRef(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		in      string
		want    Ref
		wantErr error
	}{
		{"branch", "main", Ref{"main", "refs/heads/main", f.c2, false}, nil},
		{"branch with slash", "feature/x", Ref{"feature/x", "refs/heads/feature/x", f.c1, false}, nil},
		{"branch with dots", "release-1.2.3", Ref{"release-1.2.3", "refs/heads/release-1.2.3", f.c1, false}, nil},
		{"branch beats tag", "v1.0", Ref{"v1.0", "refs/heads/v1.0", f.c2, false}, nil},
		{"full tag name", "refs/tags/v1.0", Ref{"v1.0", "refs/tags/v1.0", f.c1, true}, nil},
		{"full branch name", "refs/heads/v1.0", Ref{"v1.0", "refs/heads/v1.0", f.c2, false}, nil},
		{"annotated tag peeled", "v2.0", Ref{"v2.0", "refs/tags/v2.0", f.c2, true}, nil},
		{"tag of tag peeled", "v2.0-nested", Ref{"v2.0-nested", "refs/tags/v2.0-nested", f.c2, true}, nil},
		{"sha", f.c1, Ref{}, ErrRefIsSHA},
		{"uppercase sha", strings.ToUpper(f.c1), Ref{}, ErrRefIsSHA},
		{"sha256-length hex", strings.Repeat("ab", 32), Ref{}, ErrRefIsSHA},
		{"HEAD", "HEAD", Ref{}, ErrRefIsHEAD},
		{"refs/heads/HEAD", "refs/heads/HEAD", Ref{}, ErrRefIsHEAD},
		{"other namespace", "refs/pipelines/1", Ref{}, ErrInvalidRef},
		{"remote namespace", "refs/remotes/origin/main", Ref{}, ErrInvalidRef},
		{"unknown", "nope", Ref{}, ErrRefNotFound},
		{"unknown full", "refs/tags/nope", Ref{}, ErrRefNotFound},
		{"short sha is a name", f.c1[:8], Ref{}, ErrRefNotFound},
		{"tag on a tree", "tree-tag", Ref{}, ErrCommitNotFound},
		{"empty", "", Ref{}, ErrInvalidRef},
		{"dotdot", "a..b", Ref{}, ErrInvalidRef},
		{"traversal", "../../config", Ref{}, ErrInvalidRef},
		{"leading dash", "--upload-pack=x", Ref{}, ErrInvalidRef},
		{"dash component", "feature/-x", Ref{}, ErrInvalidRef},
		{"control char", "ma\x01in", Ref{}, ErrInvalidRef},
		{"nul", "ma\x00in", Ref{}, ErrInvalidRef},
		{"space", "ma in", Ref{}, ErrInvalidRef},
		{"reflog syntax", "main@{1}", Ref{}, ErrInvalidRef},
		{"revision syntax", "main^", Ref{}, ErrInvalidRef},
		{"trailing slash", "feature/", Ref{}, ErrInvalidRef},
		{"double slash", "feature//x", Ref{}, ErrInvalidRef},
		{"lock suffix", "main.lock", Ref{}, ErrInvalidRef},
		{"hidden component", "feature/.x", Ref{}, ErrInvalidRef},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.store.ResolveRef(ctx, f.repo, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ResolveRef(%q) err = %v, want %v", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ResolveRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
	if !errors.Is(ErrRefIsSHA, ErrInvalidRef) || !errors.Is(ErrRefIsHEAD, ErrInvalidRef) {
		t.Error("ErrRefIsSHA/ErrRefIsHEAD must wrap ErrInvalidRef")
	}
	if errors.Is(ErrRefNotFound, ErrInvalidRef) {
		t.Error("ErrRefNotFound must be distinct from ErrInvalidRef")
	}
	for _, repo := range []string{"../group/app", "group/../group/app", "missing/app"} {
		_, err := f.store.ResolveRef(ctx, repo, "main")
		if !errors.Is(err, ErrInvalidPath) && !errors.Is(err, ErrRepoNotFound) {
			t.Errorf("ResolveRef on repo %q: %v", repo, err)
		}
	}
}

func TestBranchesTagsAndRefUpdates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	names := func(refs []Ref, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range refs {
			out = append(out, r.Name)
		}
		return out
	}
	if got, want := names(f.store.Branches(ctx, f.repo)), []string{"feature/x", "main", "release-1.2.3", "v1.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Branches = %v, want %v", got, want)
	}
	// tree-tag does not resolve to a commit and is skipped.
	if got, want := names(f.store.Tags(ctx, f.repo)), []string{"v1.0", "v2.0", "v2.0-nested"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tags = %v, want %v", got, want)
	}

	// Pack all refs so updates and deletes have to deal with packed-refs.
	dir := filepath.Join(f.store.Root(), "group", "app.git")
	f.git(dir, "pack-refs", "--all")
	if r, err := f.store.ResolveRef(ctx, f.repo, "feature/x"); err != nil || r.SHA != f.c1 {
		t.Fatalf("ResolveRef after pack-refs = %+v, %v", r, err)
	}

	steps := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"pipeline ref", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/pipelines/12", f.c1) }, nil},
		{"move pipeline ref", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/pipelines/12", f.c2) }, nil},
		{"unknown commit", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/pipelines/13", strings.Repeat("1", 40)) }, ErrCommitNotFound},
		{"bad sha", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/pipelines/13", "main") }, ErrInvalidSHA},
		{"traversal", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/../../config", f.c1) }, ErrInvalidRef},
		{"not under refs", func() error { return f.store.UpdateRef(ctx, f.repo, "HEAD", f.c1) }, ErrInvalidRef},
		{"dash", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/heads/--upload-pack=x", f.c1) }, ErrInvalidRef},
		{"d/f conflict", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/heads/main/sub", f.c1) }, ErrInvalidRef},
		{"d/f conflict packed", func() error { return f.store.UpdateRef(ctx, f.repo, "refs/heads/feature", f.c1) }, ErrInvalidRef},
		{"delete packed branch", func() error { return f.store.DeleteRef(ctx, f.repo, "refs/heads/feature/x") }, nil},
		{"delete again", func() error { return f.store.DeleteRef(ctx, f.repo, "refs/heads/feature/x") }, ErrRefNotFound},
		{"delete pipeline ref", func() error { return f.store.DeleteRef(ctx, f.repo, "refs/pipelines/12") }, nil},
		{"delete bad name", func() error { return f.store.DeleteRef(ctx, f.repo, "refs/heads/a..b") }, ErrInvalidRef},
	}
	for _, st := range steps {
		if err := st.op(); !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
	}
	if _, err := f.store.ResolveRef(ctx, f.repo, "feature/x"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("deleted branch still resolves: %v", err)
	}
	// git agrees with our edits of loose and packed refs.
	if out := f.git(dir, "for-each-ref", "--format=%(refname)"); strings.Contains(out, "feature/x") || strings.Contains(out, "pipelines") {
		t.Errorf("git still sees deleted refs:\n%s", out)
	}
	f.git(dir, "fsck", "--no-progress")

	// A runner can fetch the pipeline ref over HTTP.
	if err := f.store.UpdateRef(ctx, f.repo, "refs/pipelines/99", f.c1); err != nil {
		t.Fatal(err)
	}
	w := f.workTree()
	f.git(w, "fetch", "-q", f.url(f.repo), "+refs/pipelines/99:refs/remotes/origin/pipeline")
	if got := f.git(w, "rev-parse", "refs/remotes/origin/pipeline"); got != f.c1 {
		t.Errorf("fetched pipeline ref = %s", got)
	}
}

func TestDefaultBranchAndEmptiness(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if b, err := f.store.DefaultBranch(ctx, f.repo); err != nil || b != "main" {
		t.Fatalf("DefaultBranch = %q, %v", b, err)
	}
	tests := []struct {
		branch  string
		wantErr error
	}{
		{"release-1.2.3", nil},
		{"missing", ErrRefNotFound},
		{"-x", ErrInvalidRef},
		{"a..b", ErrInvalidRef},
		{"HEAD", ErrInvalidRef},
		{"refs/heads/main", ErrInvalidRef},
	}
	for _, tc := range tests {
		if err := f.store.SetDefaultBranch(ctx, f.repo, tc.branch); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("SetDefaultBranch(%q) = %v, want %v", tc.branch, err, tc.wantErr)
		}
	}
	if b, _ := f.store.DefaultBranch(ctx, f.repo); b != "release-1.2.3" {
		t.Errorf("DefaultBranch = %q", b)
	}
	clone := filepath.Join(t.TempDir(), "c")
	f.git(t.TempDir(), "clone", "-q", f.url(f.repo), clone)
	if got := f.git(clone, "rev-parse", "HEAD"); got != f.c1 {
		t.Errorf("clone follows HEAD to %s, want %s", got, f.c1)
	}

	// Empty repositories accept any valid default branch ahead of the first push.
	f.create("empty")
	if empty, err := f.store.IsEmpty(ctx, "empty"); err != nil || !empty {
		t.Errorf("IsEmpty(empty) = %v, %v", empty, err)
	}
	if empty, err := f.store.IsEmpty(ctx, f.repo); err != nil || empty {
		t.Errorf("IsEmpty(fixture) = %v, %v", empty, err)
	}
	if err := f.store.SetDefaultBranch(ctx, "empty", "trunk"); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.store.DefaultBranch(ctx, "empty"); b != "trunk" {
		t.Errorf("DefaultBranch(empty) = %q", b)
	}
}

func TestCheckNewRefName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"main", true},
		{"release/1.0", true},
		{"feature/x-y_z", true},
		{"refs/heads/main", false},
		{"refs/x", false},
		{"HEAD", false},
		{"head", true},
		{"0123456789abcdef0123456789abcdef01234567", false},
		{"0123456789abcdef0123456789abcdef0123456", true},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("g", 40), true},
		{"-x", false},
		{"a/-b", false},
		{"a..b", false},
		{"a b", false},
		{"a~b", false},
		{"a^b", false},
		{"a:b", false},
		{"a?b", false},
		{"a*b", false},
		{"a[b", false},
		{`a\b`, false},
		{"a@{b", false},
		{"a.lock", false},
		{"a/", false},
		{"a//b", false},
		{".a", false},
		{"a.", false},
		{"", false},
	} {
		if err := CheckNewRefName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckNewRefName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
