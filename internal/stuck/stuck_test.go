package stuck

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
)

// TestExplain: one case per explanation, with instance, group, project and
// paused runners, and the runners each names.
func TestExplain(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	recent, old := now.Add(-time.Minute), now.Add(-3*time.Hour)
	for _, tc := range []struct {
		name     string
		jobTags  []string
		status   string
		runners  []*store.Runner // GroupID 1 / ProjectID 1 are replaced by the fixture's
		contacts []time.Time
		kind     string
		message  string
		names    []string
	}{
		{"not pending", nil, "running", nil, nil, "", "", nil},
		{"no runners", nil, "pending", nil, nil, NoMatch, "no active runner is available to this project", nil},
		{"only paused", nil, "pending", []*store.Runner{{Description: "p", RunnerType: "instance_type", RunUntagged: true, Paused: true}}, []time.Time{recent},
			NoMatch, "no active runner is available", nil},
		{"no runner with the tags", []string{"gpu", "linux"}, "pending",
			[]*store.Runner{{Description: "small", RunnerType: "instance_type", Tags: []string{"linux"}, RunUntagged: true}, {Description: "grp", RunnerType: "group_type", GroupID: 1, Tags: []string{"gpu"}}},
			[]time.Time{recent, recent}, NoMatch, "it has the tags gpu, linux, and no runner available to this project has all of them.",
			[]string{"(small)", "(grp)"}},
		{"untagged job, only tagged runners", nil, "pending",
			[]*store.Runner{{Description: "tagged", RunnerType: "project_type", ProjectID: 1, Tags: []string{"docker"}}},
			[]time.Time{recent}, NoMatch, "it has no tags, and no runner available to this project runs untagged jobs.", []string{"(tagged)"}},
		{"able runner offline", []string{"gpu"}, "pending",
			[]*store.Runner{{Description: "gpu box", RunnerType: "instance_type", Tags: []string{"gpu"}}, {Description: "other", RunnerType: "instance_type", Tags: []string{"linux"}}},
			[]time.Time{old, recent}, Offline, "the runners that can run it (the tags gpu) are not online.", []string{"(gpu box)"}},
		{"busy", nil, "pending",
			[]*store.Runner{{Description: "worker", RunnerType: "group_type", GroupID: 1, RunUntagged: true}},
			[]time.Time{recent}, Busy, "Waiting for a free runner: 1 online runner(s) can run this job (no tags)", []string{"(worker)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st, _ := testfix.StoreAndRepos(t)
			u := &store.User{Username: "root", IsAdmin: true}
			g := &store.Namespace{Name: "grp", Path: "grp", FullPath: "grp", Visibility: "private"}
			p := &store.Project{Name: "app", Path: "app", FullPath: "grp/app", Visibility: "private", DefaultBranch: "main"}
			j := &store.Job{Name: "build", Stage: "test", Status: tc.status, Kind: "build", Tags: tc.jobTags, Spec: `{}`}
			err := st.Write(ctx, func(tx *store.Tx) error {
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.CreateGroup(ctx, g, u.ID); err != nil {
					return err
				}
				p.NamespaceID, p.CreatorID = g.ID, u.ID
				if err := tx.CreateProject(ctx, p); err != nil {
					return err
				}
				for i, r := range tc.runners {
					r.TokenHash = fmt.Sprintf("hash-%d", i)
					if r.GroupID != 0 {
						r.GroupID = g.ID
					}
					if r.ProjectID != 0 {
						r.ProjectID = p.ID
					}
					if err := tx.CreateRunner(ctx, r); err != nil {
						return err
					}
					if err := tx.TouchRunner(ctx, r.ID, tc.contacts[i], "", "", "", ""); err != nil {
						return err
					}
				}
				pl := &store.Pipeline{ProjectID: p.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "push", Status: "pending"}
				if err := tx.InsertPipeline(ctx, pl); err != nil {
					return err
				}
				j.PipelineID, j.ProjectID = pl.ID, p.ID
				return tx.InsertJob(ctx, j)
			})
			if err != nil {
				t.Fatal(err)
			}
			ex, err := Explain(ctx, st, p, j, now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.kind == "" {
				if ex != nil {
					t.Fatalf("explained a %s job: %+v", tc.status, ex)
				}
				return
			}
			if ex == nil || ex.Kind != tc.kind || !strings.Contains(ex.Message, tc.message) {
				t.Fatalf("got %+v, want %s %q", ex, tc.kind, tc.message)
			}
			if len(ex.Runners) != len(tc.names) {
				t.Fatalf("runners %+v, want %v", ex.Runners, tc.names)
			}
			for i, n := range tc.names {
				if !strings.Contains(ex.Runners[i].Name, n) {
					t.Errorf("runner %d is %q, want %q", i, ex.Runners[i].Name, n)
				}
			}
		})
	}
}
