package pipeline

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
)

// newEngine sets up a real SQLite store and repository holding files on main.
func newEngine(t *testing.T, files map[string]string) (*Engine, *store.Project) {
	t.Helper()
	ctx := context.Background()
	dir, st, repos := testfix.StoreAndRepos(t)
	if err := repos.Create(ctx, "group/app"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@e")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	for n, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(work, n)), 0o755)
		os.WriteFile(filepath.Join(work, n), []byte(c), 0o644)
	}
	run("add", "-A")
	run("commit", "-qm", "init")
	run("push", "-q", filepath.Join(dir, "repos", "group", "app.git"), "main")
	key := make([]byte, 32)
	box, _ := secrets.New(key)
	u := &store.User{Username: "root", IsAdmin: true}
	g := &store.Namespace{Name: "group", Path: "group", FullPath: "group", Visibility: "private"}
	p := &store.Project{Name: "app", Path: "app", FullPath: "group/app", Visibility: "private", DefaultBranch: "main"}
	err := st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := tx.CreateGroup(ctx, g, u.ID); err != nil {
			return err
		}
		p.NamespaceID, p.CreatorID = g.ID, u.ID
		return tx.CreateProject(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Store: st, Repos: repos, Secrets: box, ExternalURL: "http://kiln.test", Log: nil}, p
}

const seedCI = `
stages: [test, build, package]
test:
  stage: test
  script: echo test
build:
  stage: build
  script: echo build
package:
  stage: package
  script: echo package
  only: [triggers]
`

func statuses(t *testing.T, e *Engine, plID int64) map[string]string {
	jobs, err := e.Store.JobsOfPipeline(context.Background(), plID)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, j := range jobs {
		if !j.Retried {
			m[j.Name] = j.Status
		}
	}
	return m
}

func TestCreateAndProgress(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": seedCI})
	ctx := context.Background()
	pl, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "trigger", Variables: []Var{{Key: "UPLOAD", Value: "true"}}})
	if err != nil {
		t.Fatal(err)
	}
	if pl.Status != "pending" || pl.Source != "trigger" || pl.IID != 1 {
		t.Fatalf("pipeline %+v", pl)
	}
	got := statuses(t, e, pl.ID)
	if got["test"] != "pending" || got["build"] != "created" || got["package"] != "created" {
		t.Fatalf("statuses %v", got)
	}
	// A push pipeline drops the triggers-only job.
	pl2, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "push"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := statuses(t, e, pl2.ID)["package"]; ok {
		t.Fatal("only: [triggers] job in a push pipeline")
	}
	// Finish jobs in order.
	jobs, _ := e.Store.JobsOfPipeline(ctx, pl.ID)
	ids := map[string]int64{}
	for _, j := range jobs {
		ids[j.Name] = j.ID
	}
	e.Store.Write(ctx, func(tx *store.Tx) error { _, err := tx.AssignJob(ctx, ids["test"], 1, "h1"); return err })
	if _, err := e.FinishJob(ctx, ids["test"], "success", "", nil); err != nil {
		t.Fatal(err)
	}
	if got := statuses(t, e, pl.ID); got["build"] != "pending" {
		t.Fatalf("after test: %v", got)
	}
	if _, err := e.FinishJob(ctx, ids["test"], "success", "", nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("second report: %v", err)
	}
	e.Store.Write(ctx, func(tx *store.Tx) error { _, err := tx.AssignJob(ctx, ids["build"], 1, "h2"); return err })
	code := 1
	e.FinishJob(ctx, ids["build"], "failed", "script_failure", &code)
	got = statuses(t, e, pl.ID)
	if got["package"] != "skipped" {
		t.Fatalf("after failure: %v", got)
	}
	pl, _ = e.Store.PipelineByID(ctx, pl.ID)
	if pl.Status != "failed" || pl.FinishedAt == nil {
		t.Fatalf("pipeline %+v", pl)
	}
	vars, _ := e.PipelineVariables(ctx, pl.ID)
	if len(vars) != 1 || vars[0].Value != "true" {
		t.Fatalf("pipeline vars %v", vars)
	}
}

func TestCreateRefusals(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": "job:\n  script: x\n  rules:\n    - if: $NOPE\n", "other.txt": "x"})
	ctx := context.Background()
	ref, _ := e.Repos.ResolveRef(ctx, "group/app", "main")
	for _, tc := range []struct{ ref, want string }{
		{"nope", "Reference not found"},
		{"HEAD", "Reference not found"},
		{ref.SHA, "Reference not found"},
		{"main", "Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."},
	} {
		_, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: tc.ref, Source: "trigger"})
		var ce *CreateError
		if !errors.As(err, &ce) || ce.Messages[0] != tc.want {
			t.Errorf("ref %q: %v, want %q", tc.ref, err, tc.want)
		}
	}
	n, _, _ := e.Store.ListPipelines(ctx, store.PipelineFilter{ProjectID: p.ID}, store.Page{Number: 1, PerPage: 10})
	if len(n) != 0 {
		t.Fatalf("refusals created %d pipelines", len(n))
	}
}

func TestParseHumanDuration(t *testing.T) {
	for in, want := range map[string]int64{"30 minutes": 1800, "1h 30m": 5400, "2 days": 172800, "3600": 3600, "1 week": 604800, "junk": 0, "10 seconds": 10} {
		if got := int64(ParseHumanDuration(in).Seconds()); got != want {
			t.Errorf("%q = %d, want %d", in, got, want)
		}
	}
}

// TestRecoverRedoesLostFollowUps simulates a crash right after a commit: the
// bridge's BridgePending hook never ran, so Recover must run it.
func TestRecoverRedoesLostFollowUps(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": "child:\n  trigger:\n    include: child.yml\n", "child.yml": "c:\n  script: x\n"})
	ctx := context.Background()
	pl, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(t, e, pl.ID)["child"]; got != "pending" {
		t.Fatalf("bridge is %q", got)
	}
	var called []int64
	e.BridgePending = func(_ context.Context, id int64) { called = append(called, id) }
	if err := e.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if len(called) != 0 {
		t.Fatalf("a bridge pending for less than the grace was recovered (its hook may still run): %v", called)
	}
	e.Now = func() time.Time { return time.Now().Add(BridgeRecoveryGrace + time.Second) }
	if err := e.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if len(called) != 1 {
		t.Fatalf("BridgePending calls: %v", called)
	}
}

// root is the admin user newEngine creates, the acting identity of tests
// that are not about access.
func root(t *testing.T, e *Engine) *store.User {
	t.Helper()
	u, err := e.Store.UserByUsername(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}
	return u
}
