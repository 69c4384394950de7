package pipeline

import (
	"context"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

const cascadeCI = `
build:
  script: sleep 60
child:
  trigger:
    include: child.yml
    strategy: depend
`

const cascadeChildCI = `
c1:
  script: sleep 60
grandchild:
  trigger:
    include: grandchild.yml
`

const cascadeGrandchildCI = `
g1:
  script: sleep 60
`

func jobID(t *testing.T, e *Engine, plID int64, name string) int64 {
	t.Helper()
	jobs, err := e.Store.JobsOfPipeline(context.Background(), plID)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Name == name && !j.Retried {
			return j.ID
		}
	}
	t.Fatalf("no job %s in pipeline %d", name, plID)
	return 0
}

// downstream creates the pipeline a bridge asks for and links it, as
// internal/trigger does.
func downstream(t *testing.T, e *Engine, p *store.Project, up *store.Pipeline, bridge string, include string, depend bool) *store.Pipeline {
	t.Helper()
	ctx := context.Background()
	bid := jobID(t, e, up.ID, bridge)
	pl, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "parent_pipeline", ChildIncludes: []string{include},
		UpstreamJobID: bid, UpstreamPipelineID: up.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.BridgeCreated(ctx, bid, pl.ID, depend); err != nil {
		t.Fatal(err)
	}
	return pl
}

func pipelineStatus(t *testing.T, e *Engine, id int64) string {
	t.Helper()
	pl, err := e.Store.PipelineByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return pl.Status
}

// Canceling a pipeline cancels the downstream pipelines its bridges made,
// and theirs; running jobs downstream are told to stop.
func TestCancelCascadesDownstream(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": cascadeCI, "child.yml": cascadeChildCI, "grandchild.yml": cascadeGrandchildCI})
	ctx := context.Background()
	up, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	child := downstream(t, e, p, up, "child", "child.yml", true)
	grand := downstream(t, e, p, child, "grandchild", "grandchild.yml", false)
	c1 := jobID(t, e, child.ID, "c1")
	e.Store.Write(ctx, func(tx *store.Tx) error { _, err := tx.AssignJob(ctx, c1, 1, "h-c1"); return err })
	if st := statuses(t, e, child.ID); st["c1"] != "running" || st["grandchild"] != "success" {
		t.Fatalf("child before cancel: %v", st)
	}

	if err := e.CancelPipeline(ctx, root(t, e), up.ID); err != nil {
		t.Fatal(err)
	}
	if st := statuses(t, e, up.ID); st["build"] != "canceled" || st["child"] == "running" {
		t.Fatalf("upstream jobs: %v", st)
	}
	if st := statuses(t, e, child.ID); st["c1"] != "canceling" {
		t.Fatalf("child jobs: %v", st)
	}
	if st := statuses(t, e, grand.ID); st["g1"] != "canceled" {
		t.Fatalf("grandchild jobs: %v", st)
	}
	if s := pipelineStatus(t, e, grand.ID); s != "canceled" {
		t.Fatalf("grandchild pipeline %s", s)
	}
	// The runner reports; the child ends canceled.
	if _, err := e.FinishJob(ctx, c1, "success", "", nil); err != nil {
		t.Fatal(err)
	}
	if s := pipelineStatus(t, e, child.ID); s != "canceled" {
		t.Fatalf("child pipeline %s", s)
	}
}

// A finished downstream is left as it ended.
func TestCancelLeavesFinishedDownstream(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": cascadeCI, "child.yml": "c1:\n  script: echo\n"})
	ctx := context.Background()
	up, _ := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api"})
	child := downstream(t, e, p, up, "child", "child.yml", true)
	c1 := jobID(t, e, child.ID, "c1")
	e.Store.Write(ctx, func(tx *store.Tx) error { _, err := tx.AssignJob(ctx, c1, 1, "h-c1"); return err })
	if _, err := e.FinishJob(ctx, c1, "success", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.CancelPipeline(ctx, root(t, e), up.ID); err != nil {
		t.Fatal(err)
	}
	if s := pipelineStatus(t, e, child.ID); s != "success" {
		t.Fatalf("finished child became %s", s)
	}
}

// A downstream created after its upstream was canceled (the bridge was
// being handled while the cancel ran) is canceled when it is linked.
func TestCancelBeforeDownstreamLinked(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": cascadeCI, "child.yml": cascadeChildCI, "grandchild.yml": cascadeGrandchildCI})
	ctx := context.Background()
	up, _ := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api"})
	if err := e.CancelPipeline(ctx, root(t, e), up.ID); err != nil {
		t.Fatal(err)
	}
	child := downstream(t, e, p, up, "child", "child.yml", true)
	if s := pipelineStatus(t, e, child.ID); s != "canceled" {
		t.Fatalf("late child pipeline %s", s)
	}
}

// The cascade stops at maxCancelDepth even on a (corrupt) cycle of links.
func TestCancelCascadeCycle(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": cascadeCI, "child.yml": cascadeCI})
	ctx := context.Background()
	up, _ := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api"})
	child := downstream(t, e, p, up, "child", "child.yml", true)
	// Link the child's bridge back to the upstream.
	cb := jobID(t, e, child.ID, "child")
	if err := e.Store.Write(ctx, func(tx *store.Tx) error { return tx.SetJobDownstream(ctx, cb, up.ID) }); err != nil {
		t.Fatal(err)
	}
	if err := e.CancelPipeline(ctx, root(t, e), up.ID); err != nil {
		t.Fatal(err)
	}
	if s := pipelineStatus(t, e, child.ID); s != "canceled" {
		t.Fatalf("child pipeline %s", s)
	}
}

// A cancel cascades only into downstream pipelines the caller may act on:
// a developer canceling their pipeline on an unprotected branch leaves a
// downstream on the protected main running, and cannot cancel it directly.
func TestCancelCascadeStopsWhereCallerMayNotAct(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": cascadeCI, "child.yml": cascadeChildCI, "grandchild.yml": cascadeGrandchildCI})
	ctx := context.Background()
	if err := e.Repos.UpdateRef(ctx, p.FullPath, "refs/heads/feature", headSHA(t, e, p)); err != nil {
		t.Fatal(err)
	}
	dev := &store.User{Username: "dev"}
	if err := e.Store.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, dev); err != nil {
			return err
		}
		return tx.SetProjectMember(ctx, p.ID, dev.ID, store.Developer)
	}); err != nil {
		t.Fatal(err)
	}
	up, err := e.Create(ctx, Request{User: dev, Project: p, Ref: "feature", Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	protectedDown := downstream(t, e, p, up, "child", "child.yml", true) // on main, as root
	if err := e.CancelPipeline(ctx, dev, protectedDown.ID); err != ErrForbidden {
		t.Fatalf("developer cancels a protected pipeline: %v", err)
	}
	if err := e.CancelPipeline(ctx, dev, up.ID); err != nil {
		t.Fatal(err)
	}
	if st := statuses(t, e, up.ID); st["build"] != "canceled" {
		t.Fatalf("upstream jobs: %v", st)
	}
	if st := statuses(t, e, protectedDown.ID); st["c1"] == "canceled" || st["c1"] == "canceling" {
		t.Fatalf("downstream on the protected main was canceled by a developer: %v", st)
	}
	for name, f := range map[string]func() error{
		"retry":  func() error { return e.RetryPipeline(ctx, dev, protectedDown.ID) },
		"cancel": func() error { return e.CancelJob(ctx, dev, jobID(t, e, protectedDown.ID, "c1")) },
		"play":   func() error { return e.PlayJob(ctx, dev, jobID(t, e, protectedDown.ID, "c1"), nil) },
		"nobody": func() error { return e.CancelPipeline(ctx, nil, up.ID) },
	} {
		if err := f(); err != ErrForbidden {
			t.Errorf("%s on a protected pipeline by a developer: %v, want ErrForbidden", name, err)
		}
	}
}
