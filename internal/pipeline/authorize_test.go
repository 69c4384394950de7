package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

// TestCreateAuthorizesEverySource: the engine itself refuses a pipeline
// the acting identity may not create, whichever source asks, so an adapter
// that forgets a check cannot open a protected ref.
func TestCreateAuthorizesEverySource(t *testing.T) {
	ctx := context.Background()
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": "job:\n  script: [echo]\n"})
	if err := e.Repos.UpdateRef(ctx, p.FullPath, "refs/heads/feature", headSHA(t, e, p)); err != nil {
		t.Fatal(err)
	}
	if err := e.Repos.UpdateRef(ctx, p.FullPath, "refs/tags/v9", headSHA(t, e, p)); err != nil {
		t.Fatal(err)
	}
	users := map[string]*store.User{}
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		for name, level := range map[string]int{"dev": access.Developer, "rep": access.Reporter, "maint": access.Maintainer, "blocked": access.Maintainer} {
			u := &store.User{Username: name}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if name == "blocked" {
				u.State = "blocked"
			}
			if err := tx.SetProjectMember(ctx, p.ID, u.ID, level); err != nil {
				return err
			}
			users[name] = u
		}
		return tx.CreateProtectedRef(ctx, &store.ProtectedRef{ProjectID: p.ID, Kind: "tag", Name: "v*"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{"push", "web", "api", "trigger", "schedule", "pipeline", "parent_pipeline"} {
		for _, tc := range []struct {
			user, ref string
			want      string // "" = created
		}{
			{"dev", "main", "Insufficient permissions for protected ref 'main'"},
			{"dev", "refs/heads/main", "Insufficient permissions for protected ref 'refs/heads/main'"},
			{"dev", "v9", "Insufficient permissions for protected ref 'v9'"},
			{"dev", "feature", ""},
			{"maint", "main", ""},
			{"maint", "v9", ""},
			{"rep", "feature", access.MsgCreatePipeline},
			{"blocked", "main", access.MsgCreatePipeline},
			{"", "feature", access.MsgCreatePipeline},
		} {
			before := countPipelines(t, e, p)
			_, err := e.Create(ctx, Request{Project: p, Ref: tc.ref, Source: source, User: users[tc.user]})
			var ce *CreateError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s %s on %s: %v", source, tc.user, tc.ref, err)
			case tc.want != "" && (!errors.As(err, &ce) || ce.Error() != tc.want || !ce.Denied):
				t.Errorf("%s %s on %s: err = %v, want %q", source, tc.user, tc.ref, err, tc.want)
			case tc.want != "" && countPipelines(t, e, p) != before:
				t.Errorf("%s %s on %s: a pipeline was created", source, tc.user, tc.ref)
			}
		}
	}
}

func headSHA(t *testing.T, e *Engine, p *store.Project) string {
	t.Helper()
	r, err := e.Repos.ResolveRef(context.Background(), p.FullPath, "main")
	if err != nil {
		t.Fatal(err)
	}
	return r.SHA
}

func countPipelines(t *testing.T, e *Engine, p *store.Project) int {
	t.Helper()
	var n int
	err := e.Store.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM pipelines WHERE project_id = ?`, p.ID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRevivedJobsRunAsActor: jobs a retry or a play moves back from skipped
// run as whoever retried or played, not as the pipeline's creator (whose
// job token they would otherwise carry).
func TestRevivedJobsRunAsActor(t *testing.T) {
	ctx := context.Background()
	ci := `stages: [a, b]
gate:
  stage: a
  script: [exit 1]
approve:
  stage: a
  when: manual
  script: [echo]
after_gate:
  stage: b
  script: [echo]
after_approve:
  stage: b
  needs: [approve]
  script: [echo]
`
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": ci})
	if err := e.Repos.UpdateRef(ctx, p.FullPath, "refs/heads/feature", headSHA(t, e, p)); err != nil {
		t.Fatal(err)
	}
	users := map[string]*store.User{}
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		for name, level := range map[string]int{"dev": access.Developer, "maint": access.Maintainer} {
			u := &store.User{Username: name}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.SetProjectMember(ctx, p.ID, u.ID, level); err != nil {
				return err
			}
			users[name] = u
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := e.Create(ctx, Request{Project: p, Ref: "feature", Source: "web", User: users["maint"]})
	if err != nil {
		t.Fatal(err)
	}
	jobs := func() map[string]*store.Job {
		rows, err := e.Store.JobsOfPipeline(ctx, pl.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*store.Job{}
		for _, j := range rows {
			if !j.Retried {
				out[j.Name] = j
			}
		}
		return out
	}
	finish := func(name, status string) {
		t.Helper()
		err := e.Store.Write(ctx, func(tx *store.Tx) error {
			if err := tx.SetJobStatus(ctx, jobs()[name].ID, store.JobUpdate{Status: status}); err != nil {
				return err
			}
			return e.process(ctx, tx, pl.ID)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	finish("gate", "failed")
	if j := jobs()["after_gate"]; j.Status != "skipped" {
		t.Fatalf("after_gate: %s, want skipped", j.Status)
	}
	if err := e.PlayJob(ctx, users["dev"], jobs()["approve"].ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.RetryPipeline(ctx, users["dev"], pl.ID); err != nil {
		t.Fatal(err)
	}
	for name, j := range jobs() {
		if j.UserID != users["dev"].ID {
			t.Errorf("%s (%s) runs as user %d, want the developer (%d) who retried or played", name, j.Status, j.UserID, users["dev"].ID)
		}
	}
}
