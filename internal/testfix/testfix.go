// Package testfix builds the real parts that package tests share: a SQLite
// store in a temporary directory and a repository store beside it.
package testfix

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
)

// StoreAndRepos opens a fresh SQLite store and repository store under a new
// temporary directory (returned), closed when the test ends. Repositories
// live in <dir>/repos.
func StoreAndRepos(t testing.TB) (string, *store.Store, *gitrepo.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	repos, err := gitrepo.New(filepath.Join(dir, "repos"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repos.Close() })
	return dir, st, repos
}
