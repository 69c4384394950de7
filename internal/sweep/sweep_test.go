package sweep

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
	"github.com/kilnci/kiln/internal/traces"
)

type fixture struct {
	dir   string
	n     int
	st    *store.Store
	repos *gitrepo.Store
	tr    *traces.Store
	ar    *artifacts.Store
	p     *store.Project
}

func newFixture(t *testing.T) *fixture {
	dir, st, repos := testfix.StoreAndRepos(t)
	objs, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := traces.New(st, objs, 0)
	ar := artifacts.New(objs, 0)
	f := &fixture{dir: dir, st: st, repos: repos, tr: tr, ar: ar}
	f.p = f.project(t, "grp/app")
	return f
}

func (f *fixture) write(t *testing.T, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := f.st.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) project(t *testing.T, path string) *store.Project {
	ctx := context.Background()
	f.n++
	name := "u" + strconv.Itoa(f.n)
	u := &store.User{Username: name}
	ns := &store.Namespace{Name: "g" + name, Path: "g" + name, FullPath: "g" + name, Visibility: "private"}
	p := &store.Project{Name: "app", Path: "app", FullPath: path, Visibility: "private"}
	f.write(t, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.CreateGroup(ctx, ns, u.ID); err != nil {
			return err
		}
		p.NamespaceID, p.CreatorID = ns.ID, u.ID
		return tx.CreateProject(ctx, p)
	})
	if err := f.repos.Create(ctx, path); err != nil {
		t.Fatal(err)
	}
	return p
}

// job creates a pipeline with one job whose trace and artifacts exist.
func (f *fixture) job(t *testing.T, p *store.Project) (*store.Pipeline, *store.Job) {
	ctx := context.Background()
	pl := &store.Pipeline{ProjectID: p.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "push", Status: "success"}
	j := &store.Job{ProjectID: p.ID, Name: "build", Stage: "test", Status: "success", Spec: "{}"}
	f.write(t, func(tx *store.Tx) error {
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		j.PipelineID = pl.ID
		return tx.InsertJob(ctx, j)
	})
	if _, err := f.tr.Append(context.Background(), j.ID, 0, []byte("log of job\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ar.Save(context.Background(), j.ID, "a.zip", strings.NewReader("zip")); err != nil {
		t.Fatal(err)
	}
	return pl, j
}

func (f *fixture) sweeper(dirs ...string) *Sweeper {
	return New(Config{Store: f.st, JobFiles: []Files{f.tr, f.ar}, Repos: f.repos,
		RepoGone: func(err error) bool {
			return errors.Is(err, gitrepo.ErrRepoNotFound) || errors.Is(err, gitrepo.ErrRefNotFound)
		},
		ProjectDirs: func(string) []string { return dirs }})
}

func (f *fixture) hasFiles(id int64) (trace, arts bool) {
	// A live log is chunks in the database, a finished one the file
	// traces/<id>.log of the data dir's blob store.
	_, e1 := os.Stat(filepath.Join(f.dir, "traces", strconv.FormatInt(id, 10)+".log"))
	_, e2 := os.Stat(filepath.Join(f.dir, "artifacts", strconv.FormatInt(id, 10)))
	return e1 == nil || f.tr.Size(context.Background(), id) > 0, e2 == nil
}

func pending(t *testing.T, st *store.Store) int {
	d, err := st.PendingFileDeletions(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(d)
}

func TestSweepAfterDeletions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		del     func(f *fixture, pl *store.Pipeline, j *store.Job) func(tx *store.Tx) error
		project bool // the project goes too
	}{
		{"pipeline", func(f *fixture, pl *store.Pipeline, j *store.Job) func(tx *store.Tx) error {
			return func(tx *store.Tx) error { return tx.DeletePipeline(ctx, pl.ID) }
		}, false},
		{"erased job", func(f *fixture, pl *store.Pipeline, j *store.Job) func(tx *store.Tx) error {
			return func(tx *store.Tx) error { return tx.EraseJob(ctx, j.ID) }
		}, false},
		{"project", func(f *fixture, pl *store.Pipeline, j *store.Job) func(tx *store.Tx) error {
			return func(tx *store.Tx) error { return tx.DeleteProject(ctx, f.p.ID) }
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			pl, j := f.job(t, f.p)
			_, other := f.job(t, f.project(t, "grp/other"))
			cache := filepath.Join(f.dir, "cache", "grp", "app")
			os.MkdirAll(filepath.Join(cache, "deps"), 0o755)
			f.write(t, tc.del(f, pl, j))
			if pl, err := f.st.PipelineByID(ctx, j.PipelineID); tc.name == "pipeline" && err == nil {
				t.Fatalf("pipeline still there: %v", pl)
			}
			// Committed, not swept yet (a crash here): files still there, queued.
			if tr, ar := f.hasFiles(j.ID); !tr || !ar || pending(t, f.st) == 0 {
				t.Fatalf("before the sweep: trace %v artifacts %v pending %d", tr, ar, pending(t, f.st))
			}
			// A new sweeper, as after a restart, carries it out.
			if err := f.sweeper(cache).Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if tr, ar := f.hasFiles(j.ID); tr || ar {
				t.Errorf("after the sweep: trace %v artifacts %v", tr, ar)
			}
			if n := pending(t, f.st); n != 0 {
				t.Errorf("%d removals still queued", n)
			}
			if tr, ar := f.hasFiles(other.ID); !tr || !ar {
				t.Errorf("another project's job lost its files: trace %v artifacts %v", tr, ar)
			}
			_, cacheErr := os.Stat(cache)
			_, repoErr := f.repos.LocalPath("grp/app")
			if tc.project {
				if cacheErr == nil {
					t.Error("the deleted project's cache is still there")
				}
				if !errors.Is(repoErr, gitrepo.ErrRepoNotFound) {
					t.Errorf("the deleted project's repository: %v", repoErr)
				}
				// The path can be used again once the files are gone.
				f.project(t, "grp/app")
			} else if cacheErr != nil {
				t.Error("a pipeline deletion removed the project's cache")
			}
		})
	}
}

// Project runners go with their project; the path stays taken while the
// old repository is still being removed.
func TestDeleteProjectRunnersAndPathReuse(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := &store.Runner{TokenHash: "h", RunnerType: "project_type", ProjectID: f.p.ID, AccessLevel: "not_protected"}
	inst := &store.Runner{TokenHash: "i", RunnerType: "instance_type", AccessLevel: "not_protected"}
	f.write(t, func(tx *store.Tx) error {
		if err := tx.CreateRunner(ctx, r); err != nil {
			return err
		}
		return tx.CreateRunner(ctx, inst)
	})
	f.write(t, func(tx *store.Tx) error { return tx.DeleteProject(ctx, f.p.ID) })
	if _, err := f.st.RunnerByID(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("project runner survived its project: %v", err)
	}
	if _, err := f.st.RunnerByID(ctx, inst.ID); err != nil {
		t.Errorf("instance runner lost: %v", err)
	}
	again := &store.Project{NamespaceID: f.p.NamespaceID, Name: "app", Path: "app", FullPath: "grp/app", Visibility: "private", CreatorID: f.p.CreatorID}
	err := f.st.Write(ctx, func(tx *store.Tx) error { return tx.CreateProject(ctx, again) })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("creating a project over one whose files are being removed: %v", err)
	}
}

func TestOrphans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, j := f.job(t, f.p)
	// Files of a job that does not exist (left by an older version).
	f.tr.Append(ctx, j.ID+100, 0, []byte("old log\n"))
	f.ar.Save(context.Background(), j.ID+100, "a.zip", strings.NewReader("zip"))
	os.WriteFile(filepath.Join(f.dir, "traces", strconv.FormatInt(j.ID+200, 10)+".log"), []byte("older log\n"), 0o600)
	if err := f.sweeper().Orphans(ctx); err != nil {
		t.Fatal(err)
	}
	if tr, ar := f.hasFiles(j.ID + 100); tr || ar {
		t.Errorf("orphan files kept: trace %v artifacts %v", tr, ar)
	}
	if tr, _ := f.hasFiles(j.ID + 200); tr {
		t.Errorf("orphan trace file kept")
	}
	if tr, ar := f.hasFiles(j.ID); !tr || !ar {
		t.Errorf("a live job lost its files: trace %v artifacts %v", tr, ar)
	}
}

// A work tree where the job removed its own write permission is still
// removed (the agent may not be root).
func TestRemoveTreeReadOnlyDirs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root", "app")
	inner := filepath.Join(dir, "locked", "deeper")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(inner, "f"), []byte("x"), 0o444)
	os.Chmod(inner, 0o500)
	os.Chmod(filepath.Join(dir, "locked"), 0o500)
	if err := removeTree(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}
