package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

const inputsCI = "spec:\n  inputs:\n    env:\n      options: [staging, production]\n    n:\n      type: number\n      default: 2\n---\njob:\n  script: echo deploy $[[ inputs.env ]] x$[[ inputs.n ]]\n"

func TestCreateWithInputs(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": inputsCI})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		want   string
	}{
		{"required", nil, "`env` input: required value has not been provided"},
		{"option", map[string]any{"env": "prod"}, "`env` input: `prod` cannot be used because it is not in the list of allowed options"},
		{"type", map[string]any{"env": "staging", "n": "many"}, "`n` input: provided value is not a number"},
		{"unknown", map[string]any{"env": "staging", "x": "1"}, "unknown input arguments: x"},
	} {
		for _, preview := range []bool{false, true} {
			var err error
			req := Request{User: root(t, e), Project: p, Ref: "main", Source: "api", Inputs: tc.inputs}
			if preview {
				_, err = e.Preview(ctx, req)
			} else {
				_, err = e.Create(ctx, req)
			}
			var ce *CreateError
			if !errors.As(err, &ce) || ce.Messages[0] != tc.want {
				t.Errorf("%s (preview %v): %v, want %q", tc.name, preview, err, tc.want)
			}
		}
	}
	if n, _, _ := e.Store.ListPipelines(ctx, store.PipelineFilter{ProjectID: p.ID}, store.Page{Number: 1, PerPage: 10}); len(n) != 0 {
		t.Fatalf("refusals created %d pipelines", len(n))
	}

	pv, err := e.Preview(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api", Inputs: map[string]any{"env": "production", "n": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Inputs["env"] != "production" || pv.Inputs["n"] != int64(7) {
		t.Fatalf("preview inputs = %#v", pv.Inputs)
	}
	pl, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api", Inputs: map[string]any{"env": "production"}})
	if err != nil {
		t.Fatal(err)
	}
	// Another request's inputs must not come back from the config cache.
	pl2, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "api", Inputs: map[string]any{"env": "staging"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   int64
		want string
	}{{pl.ID, "echo deploy production x2"}, {pl2.ID, "echo deploy staging x2"}} {
		jobs, _, err := e.Store.ListJobs(ctx, store.JobFilter{PipelineID: tc.id}, store.Page{Number: 1, PerPage: 10})
		if err != nil || len(jobs) != 1 || !strings.Contains(jobs[0].Spec, tc.want) {
			t.Errorf("pipeline %d jobs = %v (%v), want script %q", tc.id, jobs, err, tc.want)
		}
	}
}
