package pipeline

import (
	"context"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

const dotenvCI = `
stages: [build, test]
variables:
  SHARED: global
a:
  stage: build
  script: x
b:
  stage: build
  script: x
all:
  stage: test
  variables:
    SHARED: job
  script: x
none:
  stage: test
  dependencies: []
  script: x
only_b:
  stage: test
  dependencies: [b]
  script: x
need_no_artifacts:
  stage: test
  needs: [{job: a, artifacts: false}]
  script: x
need_a:
  stage: test
  needs: [a]
  script: x
need_both_dep_b:
  stage: test
  needs: [a, b]
  dependencies: [b]
  script: x
same_stage:
  stage: build
  script: x
`

// TestJobVariablesDotenv: a job inherits the dotenv variables of the jobs
// it takes artifacts from (earlier stages by default, dependencies and
// needs:artifacts restricting), above YAML variables and below project and
// pipeline variables, as GitLab documents.
func TestJobVariablesDotenv(t *testing.T) {
	e, p := newEngine(t, map[string]string{".gitlab-ci.yml": dotenvCI})
	ctx := context.Background()
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		return tx.CreateVariable(ctx, &store.Variable{ProjectID: p.ID, Key: "PROJ", ValueEnc: e.Secrets.Seal("project"), VariableType: "env_var", EnvironmentScope: "*"})
	})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := e.Create(ctx, Request{User: root(t, e), Project: p, Ref: "main", Source: "trigger", Variables: []Var{{Key: "TRIG", Value: "trigger"}}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := e.Store.JobsOfPipeline(ctx, pl.ID)
	byName := map[string]*store.Job{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	err = e.Store.Write(ctx, func(tx *store.Tx) error {
		if err := tx.SetJobDotenv(ctx, byName["a"].ID, pl.ID, []string{"FROM_A", "SHARED", "PROJ", "TRIG", "BOTH"}, []string{"1", "dotenv", "dotenv", "dotenv", "from-a"}); err != nil {
			return err
		}
		return tx.SetJobDotenv(ctx, byName["b"].ID, pl.ID, []string{"FROM_B", "BOTH"}, []string{"2", "from-b"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		job  string
		want map[string]string // "" = absent
	}{
		{"all", map[string]string{"FROM_A": "1", "FROM_B": "2", "BOTH": "from-b", "SHARED": "dotenv", "PROJ": "project", "TRIG": "trigger"}},
		{"none", map[string]string{"FROM_A": "", "FROM_B": "", "BOTH": "", "SHARED": "global", "PROJ": "project"}},
		{"only_b", map[string]string{"FROM_A": "", "FROM_B": "2", "BOTH": "from-b"}},
		{"need_no_artifacts", map[string]string{"FROM_A": "", "FROM_B": "", "SHARED": "global"}},
		{"need_a", map[string]string{"FROM_A": "1", "FROM_B": "", "BOTH": "from-a"}},
		{"need_both_dep_b", map[string]string{"FROM_A": "", "FROM_B": "2"}},
		{"same_stage", map[string]string{"FROM_A": "", "FROM_B": ""}},
	} {
		t.Run(tc.job, func(t *testing.T) {
			j := byName[tc.job]
			sp, err := ParseSpec(j.Spec)
			if err != nil {
				t.Fatal(err)
			}
			vars, err := e.JobVariables(ctx, p, pl, j, sp, "tok")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, v := range vars {
				got[v.Key] = v.Value
			}
			for k, want := range tc.want {
				if v, ok := got[k]; want == "" && ok {
					t.Errorf("%s = %q, want absent", k, v)
				} else if want != "" && v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
		})
	}
}
