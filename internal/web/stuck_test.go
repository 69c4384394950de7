package web

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// TestStuckJobExplainsItself: a pending job's page says why it waits, one
// case per row, and names the runners and tags involved.
func TestStuckJobExplainsItself(t *testing.T) {
	ctx := context.Background()
	recent, old := time.Now(), time.Now().Add(-3*time.Hour)
	for _, tc := range []struct {
		name     string
		jobTags  []string
		runners  []*store.Runner
		contacts []time.Time
		want     []string
	}{
		{"no runners", nil, nil, nil, []string{"no active runner is available"}},
		{"no runner with the tags", []string{"gpu", "linux"},
			[]*store.Runner{{Description: "small", RunnerType: "instance_type", Tags: []string{"linux"}, RunUntagged: true}},
			[]time.Time{recent},
			[]string{"it has the tags gpu, linux, and no runner available to this project has all of them", "(small): linux"}},
		{"untagged job, no untagged runner", nil,
			[]*store.Runner{{Description: "tagged", RunnerType: "instance_type", Tags: []string{"docker"}}},
			[]time.Time{recent},
			[]string{"no runner available to this project runs untagged jobs", "docker; does not run untagged jobs"}},
		{"matching runner offline", []string{"gpu"},
			[]*store.Runner{{Description: "gpu box", RunnerType: "instance_type", Tags: []string{"gpu"}}},
			[]time.Time{old},
			[]string{"the runners that can run it (the tags gpu) are not online", "(gpu box): gpu", "(offline)"}},
		{"busy", nil,
			[]*store.Runner{{Description: "worker", RunnerType: "instance_type", RunUntagged: true}, {Description: "paused one", RunnerType: "instance_type", RunUntagged: true, Paused: true}},
			[]time.Time{recent, recent},
			[]string{"Waiting for a free runner: 1 online runner(s) can run this job"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var job *store.Job
			err := f.st.Write(ctx, func(tx *store.Tx) error {
				for i, r := range tc.runners {
					r.TokenHash = fmt.Sprintf("hash-%d", i)
					if err := tx.CreateRunner(ctx, r); err != nil {
						return err
					}
					if err := tx.TouchRunner(ctx, r.ID, tc.contacts[i], "", "", "", ""); err != nil {
						return err
					}
				}
				pl := &store.Pipeline{ProjectID: f.project.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "push", Status: "pending"}
				if err := tx.InsertPipeline(ctx, pl); err != nil {
					return err
				}
				job = &store.Job{PipelineID: pl.ID, ProjectID: f.project.ID, Name: "build", Stage: "test", Status: "pending", Tags: tc.jobTags, Spec: `{}`}
				return tx.InsertJob(ctx, job)
			})
			if err != nil {
				t.Fatal(err)
			}
			c := f.client()
			f.signIn(c, "root", "password123")
			code, body := get(t, c, fmt.Sprintf("%s/root/app/-/jobs/%d", f.srv.URL, job.ID))
			if code != http.StatusOK {
				t.Fatalf("job page: %d", code)
			}
			body = html.UnescapeString(body)
			if !strings.Contains(body, `id="job-stuck"`) {
				t.Fatalf("no explanation on the page")
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q", w)
				}
			}
		})
	}
}
