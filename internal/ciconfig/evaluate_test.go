package ciconfig

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOnlyExcept(t *testing.T) {
	cfg := mustParse(t, `
default-job: {script: x}
main-only: {script: x, only: [main]}
tags-only: {script: x, only: [tags]}
regex: {script: x, only: [/^release-.*$/]}
except-main: {script: x, except: [main]}
vars: {script: x, only: {refs: [branches], variables: [$DEPLOY == "yes"]}}
changes: {script: x, only: {changes: [docs/**/*.md]}}
mr: {script: x, only: [merge_requests]}
k8s: {script: x, only: {kubernetes: active}}
`, Options{})
	cases := []struct {
		name string
		ctx  EvalContext
		want []string
	}{
		{"push main", EvalContext{Source: "push", Ref: "main"}, []string{"default-job", "main-only", "changes"}},
		{"push tag", EvalContext{Source: "push", Ref: "v1", Tag: true}, []string{"default-job", "tags-only", "except-main", "changes"}},
		{"release branch with var", EvalContext{Source: "push", Ref: "release-1", Variables: vars(map[string]string{"DEPLOY": "yes"})},
			[]string{"default-job", "regex", "except-main", "vars", "changes"}},
		{"changed docs", EvalContext{Source: "push", Ref: "feature", ChangedFiles: func() ([]string, error) { return []string{"docs/a/b.md"}, nil }},
			[]string{"default-job", "except-main", "changes"}},
		{"changed code", EvalContext{Source: "push", Ref: "feature", ChangedFiles: func() ([]string, error) { return []string{"main.go"}, nil }},
			[]string{"default-job", "except-main"}},
		// only: {changes} has no refs, so it is not limited to branches and tags.
		{"merge request", EvalContext{Source: "merge_request_event", Ref: "feature"}, []string{"changes", "mr"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustEval(t, cfg, c.ctx)
			if got := plannedNames(p); !equalStrings(got, c.want) {
				t.Errorf("jobs %q, want %q", got, c.want)
			}
		})
	}
	if j := cfg.Jobs[0]; j.Only == nil || !equalStrings(j.Only.Refs, []string{"branches", "tags"}) {
		t.Errorf("default only %+v", j.Only)
	}
}

func TestEvaluateEdges(t *testing.T) {
	t.Run("only .pre/.post jobs", func(t *testing.T) {
		cfg := mustParse(t, "a: {stage: .pre, script: x}\nb: {script: x, rules: [{if: $NOPE}]}\n", Options{})
		wantPipelineErr(t, cfg, EvalContext{Source: "push", Ref: "main"}, msgNoJobs)
	})
	t.Run("workflow when never and name", func(t *testing.T) {
		cfg := mustParse(t, `
workflow:
  name: 'Pipeline for $CI_COMMIT_REF_NAME $KIND'
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - if: $CI_COMMIT_REF_NAME
      variables: {KIND: branch}
job: {script: x}
`, Options{})
		wantPipelineErr(t, cfg, EvalContext{Variables: vars(map[string]string{"CI_COMMIT_TAG": "v1", "CI_COMMIT_REF_NAME": "v1"})}, msgWorkflowFilter)
		p := mustEval(t, cfg, EvalContext{Source: "push", Ref: "main", Variables: vars(map[string]string{"CI_COMMIT_REF_NAME": "main"})})
		if p.Name != "Pipeline for main branch" {
			t.Errorf("name %q", p.Name)
		}
	})
	t.Run("delayed rule and job default when", func(t *testing.T) {
		cfg := mustParse(t, `
d: {script: x, rules: [{when: delayed, start_in: 5 minutes}]}
m: {script: x, when: manual, rules: [{if: $X}]}
`, Options{})
		p := mustEval(t, cfg, EvalContext{Source: "push", Ref: "main", Variables: vars(map[string]string{"X": "1"})})
		if d := planned(t, p, "d"); d.When != "delayed" || d.StartIn != "5 minutes" {
			t.Errorf("d %+v", d)
		}
		if m := planned(t, p, "m"); m.When != "manual" || !m.AllowFailure {
			t.Errorf("a rule without when keeps the job's when: %+v", m)
		}
	})
}

func TestParseDetails(t *testing.T) {
	t.Run("merge keys and YAML 1.1 booleans", func(t *testing.T) {
		cfg := mustParse(t, `
.base: &base {stage: build, interruptible: yes, tags: [a]}
job:
  <<: *base
  script: x
  tags: [b]
`, Options{})
		j := cfg.Jobs[0]
		if j.Stage != "build" || !j.Interruptible || !equalStrings(j.Tags, []string{"b"}) {
			t.Errorf("%+v", j)
		}
	})
	t.Run("spec header", func(t *testing.T) {
		cfg := mustParse(t, "spec:\n  inputs: {}\n---\njob: {script: x}\n", Options{})
		if len(cfg.Jobs) != 1 {
			t.Errorf("jobs %q", jobNames(cfg.Jobs))
		}
	})
	t.Run("extends deep merge", func(t *testing.T) {
		cfg := mustParse(t, `
.a: {variables: {A: a, B: a}, script: [a], cache: {key: k, paths: [x]}}
.b: {extends: .a, variables: {B: b}, cache: {paths: [y]}}
job: {extends: [.b], variables: {C: c}}
`, Options{})
		j := cfg.Jobs[0]
		if v := varMap(j.Variables); v["A"] != "a" || v["B"] != "b" || v["C"] != "c" {
			t.Errorf("variables %v", v)
		}
		if len(j.Cache) != 1 || j.Cache[0].Key != "k" || !equalStrings(j.Cache[0].Paths, []string{"y"}) {
			t.Errorf("cache %+v", j.Cache)
		}
	})
	t.Run("extends nesting", func(t *testing.T) {
		var b strings.Builder
		for i := 0; i < 12; i++ {
			b.WriteString(".t" + string(rune('a'+i)) + ": {extends: .t" + string(rune('a'+i+1)) + "}\n")
		}
		b.WriteString(".tm: {script: x}\njob: {extends: .ta}\n")
		_, err := Parse([]byte(b.String()), Options{})
		if e := msgs2(err); len(e) != 1 || !strings.HasSuffix(e[0], ": nesting too deep in `extends`") {
			t.Errorf("errors %q", e)
		}
	})
	t.Run("merged yaml", func(t *testing.T) {
		cfg := mustParse(t, ".t: {script: [a]}\njob: {extends: .t, stage: build}\n", Options{})
		for _, want := range []string{"---\n", "stage: build", "- a"} {
			if !strings.Contains(cfg.MergedYAML, want) {
				t.Errorf("merged yaml lacks %q:\n%s", want, cfg.MergedYAML)
			}
		}
	})
}

func TestLint(t *testing.T) {
	src := []byte(`
stages: [build, test]
b: {stage: build, script: make, tags: [docker], environment: production}
t: {script: test, rules: [{if: $RUN}, {when: manual}]}
`)
	res := Lint(src, Options{}, nil)
	if !res.Valid || len(res.Jobs) != 2 || res.Jobs[0].Name != "b" || !equalStrings(res.Jobs[0].TagList, []string{"docker"}) ||
		res.Jobs[0].Environment != "production" || res.Jobs[0].Only == nil || res.MergedYAML == "" {
		t.Errorf("static lint %+v", res)
	}
	if len(res.Warnings) != 1 {
		t.Errorf("warnings %q", res.Warnings)
	}
	res = Lint(src, Options{}, &EvalContext{Source: "push", Ref: "main"})
	if !res.Valid || len(res.Jobs) != 2 || res.Jobs[1].When != "manual" {
		t.Errorf("dry-run lint %+v", res.Jobs)
	}
	res = Lint([]byte("rspec: {script: test, tags: mysql}"), Options{}, nil)
	if res.Valid || !equalStrings(res.Errors, []string{"jobs:rspec:tags config should be an array of strings"}) {
		t.Errorf("invalid lint %+v", res)
	}
	out, _ := json.Marshal(Lint([]byte(""), Options{}, nil))
	if !strings.Contains(string(out), `"valid":false`) || !strings.Contains(string(out), `"jobs":[]`) {
		t.Errorf("json %s", out)
	}
}
