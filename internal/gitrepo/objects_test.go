package gitrepo

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	f := newFixture(t, WithMaxFileSize(1024))
	ctx := context.Background()
	tests := []struct {
		name, sha, path string
		want            string
		wantErr         error
	}{
		{"root file", f.c1, ".gitlab-ci.yml", "test:\n  script: [true]\n", nil},
		{"leading slash", f.c1, "/src/a.go", "package a\n", nil},
		{"nested", f.c1, "src/sub/b.go", "package sub\n", nil},
		{"old version", f.c1, "src/a.go", "package a\n", nil},
		{"new version", f.c2, "src/a.go", "package a // changed\n", nil},
		{"deleted later", f.c2, "docs/readme.md", "", ErrFileNotFound},
		{"added later", f.c1, "src/new.txt", "", ErrFileNotFound},
		{"special chars", f.c1, "weird name [1].txt", "brackets\n", nil},
		{"directory", f.c1, "src", "", ErrFileNotFound},
		{"through a file", f.c1, "src/a.go/x", "", ErrFileNotFound},
		{"symlink", f.c1, "link.yml", "", ErrFileNotFound},
		{"submodule", f.c1, "vendor/submod", "", ErrFileNotFound},
		{"too large", f.c1, "big.bin", "", ErrFileTooLarge},
		{"traversal", f.c1, "../config", "", ErrInvalidPath},
		{"inner traversal", f.c1, "src/../.gitlab-ci.yml", "", ErrInvalidPath},
		{"dot segment", f.c1, "./.gitlab-ci.yml", "", ErrInvalidPath},
		{"empty segment", f.c1, "src//a.go", "", ErrInvalidPath},
		{"empty", f.c1, "", "", ErrInvalidPath},
		{"control char", f.c1, "src/a\n.go", "", ErrInvalidPath},
		{"short sha", f.c1[:10], "src/a.go", "", ErrInvalidSHA},
		{"branch name as sha", "main", "src/a.go", "", ErrInvalidSHA},
		{"unknown commit", strings.Repeat("e", 40), "src/a.go", "", ErrCommitNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, id, err := f.store.ReadFile(ctx, f.repo, tc.sha, tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(data) != tc.want {
				t.Fatalf("ReadFile = %q, %v; want %q", data, err, tc.want)
			}
			wantID := f.git(f.t.TempDir(), "--git-dir="+f.store.repoDir(f.repo), "rev-parse", tc.sha+":"+strings.TrimPrefix(tc.path, "/"))
			if id != wantID {
				t.Errorf("blob id = %s, want %s", id, wantID)
			}
		})
	}
	// A tree or blob id is not a commit.
	tree := f.git(t.TempDir(), "--git-dir="+f.store.repoDir(f.repo), "rev-parse", f.c1+"^{tree}")
	if _, _, err := f.store.ReadFile(ctx, f.repo, tree, "src/a.go"); !errors.Is(err, ErrCommitNotFound) {
		t.Errorf("ReadFile at tree id: %v", err)
	}
}

func TestCommit(t *testing.T) {
	f := newFixture(t)
	c, err := f.store.Commit(context.Background(), f.repo, f.c2)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if c.SHA != f.c2 || !reflect.DeepEqual(c.Parents, []string{f.c1}) || c.Title != "Second" ||
		c.AuthorName != "Ada Author" || c.AuthorEmail != "ada@example.com" || !c.AuthoredAt.Equal(when) ||
		c.CommitterName != "Carl Committer" || c.CommitterEmail != "carl@example.com" || !c.CommittedAt.Equal(when.Add(time.Second)) {
		t.Errorf("Commit = %+v", c)
	}
	c1, err := f.store.Commit(context.Background(), f.repo, f.c1)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Title != "Add CI" || c1.Description != "Longer description\nover two lines." || len(c1.Parents) != 0 ||
		!strings.HasPrefix(c1.Message, "Add CI\n\nLonger") {
		t.Errorf("Commit(c1) = %+v", c1)
	}
	for _, sha := range []string{"", "xyz", strings.Repeat("0", 40)} {
		if _, err := f.store.Commit(context.Background(), f.repo, sha); !errors.Is(err, ErrInvalidSHA) && !errors.Is(err, ErrCommitNotFound) {
			t.Errorf("Commit(%q) = %v", sha, err)
		}
	}
}

func TestChangedFiles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	all := []string{".gitlab-ci.yml", ".hidden/conf.yml", "Dockerfile", "big.bin", "config/settings.yaml",
		"config/settings.yml", "deep/a/b/c/file.json", "docs/readme.md", "link.yml",
		"spec/models/user_spec.rb", "src/a.go", "src/sub/b.go", "vendor/submod", "weird name [1].txt"}
	// git itself is the oracle for the expected lists.
	gitDiff := func(a, b string) []string {
		out := f.git(t.TempDir(), "--git-dir="+f.store.repoDir(f.repo), "diff", "--name-only", "--no-renames", a, b)
		return strings.Split(out, "\n")
	}
	second := gitDiff(f.c1, f.c2)
	if !reflect.DeepEqual(all, strings.Split(f.git(t.TempDir(), "--git-dir="+f.store.repoDir(f.repo), "ls-tree", "-r", "--name-only", f.c1), "\n")) {
		t.Fatal("fixture file list drifted from the test's expectation")
	}
	tests := []struct {
		name, before, after string
		want                []string
		wantErr             error
	}{
		{"push range", f.c1, f.c2, second, nil},
		{"reverse range", f.c2, f.c1, second, nil},
		{"zero before uses first parent", ZeroSHA, f.c2, second, nil},
		{"empty before uses first parent", "", f.c2, second, nil},
		{"root commit lists everything", "", f.c1, all, nil},
		{"same commit", f.c2, f.c2, nil, nil},
		{"bad after", f.c1, "main", nil, ErrInvalidSHA},
		{"bad before", "abc", f.c2, nil, ErrInvalidSHA},
		{"unknown before", strings.Repeat("a", 40), f.c2, nil, ErrCommitNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.store.ChangedFiles(ctx, f.repo, tc.before, tc.after)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("ChangedFiles = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestExists(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		sha   string
		globs []string
		want  bool
	}{
		{"exact file", f.c1, []string{"Dockerfile"}, true},
		{"exact nested", f.c1, []string{"src/sub/b.go"}, true},
		{"exact missing", f.c1, []string{"Makefile"}, false},
		{"directory is not a file", f.c1, []string{"src"}, false},
		{"leading slash does not match", f.c1, []string{"/Dockerfile"}, false},
		{"star stays in dir", f.c1, []string{"*.go"}, false},
		{"star in subdir", f.c1, []string{"src/*.go"}, true},
		{"doublestar any depth", f.c1, []string{"**/*.json"}, true},
		{"doublestar zero dirs", f.c1, []string{"**/Dockerfile"}, true},
		{"doublestar middle", f.c1, []string{"deep/**/file.json"}, true},
		{"doublestar middle after move", f.c2, []string{"deep/**/file.json"}, false},
		{"trailing doublestar is star", f.c1, []string{"deep/**"}, false},
		{"trailing doublestar one level", f.c1, []string{"src/**"}, true},
		{"dotfiles match star", f.c1, []string{"*.yml"}, true},
		{"dot dirs match doublestar", f.c1, []string{"**/conf.yml"}, true},
		{"braces", f.c1, []string{"config/settings.{json,toml}"}, false},
		{"braces hit", f.c1, []string{"config/settings.{json,yaml}"}, true},
		{"question mark", f.c1, []string{"src/?.go"}, true},
		{"class", f.c1, []string{"src/[ab].go"}, true},
		{"negated class", f.c1, []string{"src/[!a].go"}, false},
		{"escaped bracket literal", f.c1, []string{`weird name \[1\].txt`}, true},
		{"any of several", f.c1, []string{"Makefile", "nope/*", "spec/**/*_spec.rb"}, true},
		{"none of several", f.c1, []string{"Makefile", "nope/*", "**/*.py"}, false},
		{"symlink counts as file", f.c1, []string{"link.yml"}, true},
		{"empty list", f.c1, nil, false},
		{"deleted file", f.c2, []string{"docs/*.md"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.store.Exists(ctx, f.repo, tc.sha, tc.globs)
			if err != nil || got != tc.want {
				t.Fatalf("Exists(%q) = %v, %v; want %v", tc.globs, got, err, tc.want)
			}
		})
	}
	if _, err := f.store.Exists(ctx, f.repo, "main", []string{"*"}); !errors.Is(err, ErrInvalidSHA) {
		t.Errorf("Exists with bad sha: %v", err)
	}
	if _, err := f.store.Exists(ctx, "../x", f.c1, []string{"*"}); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Exists with bad repo: %v", err)
	}
}
