package ciconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Ports of the gitlab-ci-local cases in testdata/gcl: what Parse and
// Evaluate produce (jobs, stages, needs, variables...), with GitLab's
// semantics where EXPECTED.md notes a gcl divergence. Job execution
// (outputs, exit codes) is out of scope here.

// gclPush is gcl's mocked pipeline: a push on branch master, default
// branch main, GITLAB_CI=false.
func gclPush(extra map[string]string) EvalContext {
	v := map[string]string{"CI_COMMIT_BRANCH": "master", "CI_COMMIT_REF_NAME": "master", "CI_DEFAULT_BRANCH": "main",
		"CI_PIPELINE_SOURCE": "push", "GITLAB_CI": "false"}
	for k, x := range extra {
		v[k] = x
	}
	return EvalContext{Source: "push", Ref: v["CI_COMMIT_BRANCH"], Variables: vars(v)}
}

func gclParse(t *testing.T, dir, file string, opts Options) (*Config, []string) {
	t.Helper()
	root := filepath.Join("testdata/gcl", dir)
	src, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Files == nil {
		opts.Files = dirFS(root)
	}
	cfg, err := Parse(src, opts)
	return cfg, messages(t, err)
}

func gclMust(t *testing.T, dir, file string, opts Options) *Config {
	t.Helper()
	cfg, msgs := gclParse(t, dir, file, opts)
	if msgs != nil {
		t.Fatalf("%s/%s: %q", dir, file, msgs)
	}
	return cfg
}

func job(t *testing.T, cfg *Config, name string) *Job {
	t.Helper()
	for _, j := range cfg.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("no job %q in %q", name, jobNames(cfg.Jobs))
	return nil
}

func planned(t *testing.T, p *Plan, name string) PlannedJob {
	t.Helper()
	for _, j := range p.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("job %q not planned; plan has %q", name, plannedNames(p))
	return PlannedJob{}
}

func needNames(needs []Need) []string {
	out := []string{}
	for _, n := range needs {
		out = append(out, n.Job)
	}
	return out
}

func wantErr(t *testing.T, msgs []string, want string) {
	t.Helper()
	for _, m := range msgs {
		if m == want {
			return
		}
	}
	t.Errorf("want error %q, got %q", want, msgs)
}

func wantPipelineErr(t *testing.T, cfg *Config, ctx EvalContext, want string) {
	t.Helper()
	_, err := cfg.Evaluate(ctx)
	if err == nil || err.Error() != want {
		t.Errorf("Evaluate error = %v, want %q", err, want)
	}
	if _, ok := err.(*PipelineError); err != nil && !ok {
		t.Errorf("error type %T, want *PipelineError", err)
	}
}

func mustEval(t *testing.T, cfg *Config, ctx EvalContext) *Plan {
	t.Helper()
	p, err := cfg.Evaluate(ctx)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return p
}

func TestGCLNeeds(t *testing.T) {
	t.Run("01-needs-sequence", func(t *testing.T) {
		cfg := gclMust(t, "01-needs-sequence", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		want := []string{"deploy-job", "test-job", "build-job", "pre-job", "no-needs-job", "premium-job"}
		if got := plannedNames(p); !equalStrings(got, want) {
			t.Errorf("jobs = %q, want %q", got, want)
		}
		for name, needs := range map[string][]string{"deploy-job": {"test-job"}, "test-job": {"build-job"}, "build-job": {"pre-job"}} {
			if got := needNames(planned(t, p, name).Needs); !equalStrings(got, needs) {
				t.Errorf("%s needs %q, want %q", name, got, needs)
			}
		}
		if j := planned(t, p, "no-needs-job"); j.NeedsSet {
			t.Error("no-needs-job must be stage-scheduled")
		}
		// Cross-project needs are kept on the Job but ignored, with a warning.
		prem := planned(t, p, "premium-job")
		if len(prem.Job.Needs) != 1 || prem.Job.Needs[0].Project != "my/other/project" || len(prem.Needs) != 0 {
			t.Errorf("premium-job needs: job %+v planned %+v", prem.Job.Needs, prem.Needs)
		}
		if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "cross-project") {
			t.Errorf("warnings = %q", cfg.Warnings)
		}
	})
	t.Run("02-needs-same-stage", func(t *testing.T) {
		cfg := gclMust(t, "02-needs-same-stage", ".gitlab-ci.yml", Options{})
		if j := job(t, cfg, "test-job"); j.Stage != "test" || !equalStrings(needNames(j.Needs), []string{"build-job"}) {
			t.Errorf("test-job = %+v", j)
		}
	})
	t.Run("03-needs-invalid-stage", func(t *testing.T) {
		_, msgs := gclParse(t, "03-needs-invalid-stage", ".gitlab-ci.yml", Options{})
		wantErr(t, msgs, "build-job job: need test-job is not defined in current or prior stages")
		_, msgs = gclParse(t, "03-needs-invalid-stage", "needs-unspecified-job/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "test-job job: undefined need: invalid")
	})
	t.Run("04-never-needs", func(t *testing.T) {
		cfg := gclMust(t, "04-never-needs", ".gitlab-ci.yml", Options{})
		wantPipelineErr(t, cfg, gclPush(nil), "'test-job' job needs 'never-job' job, but 'never-job' is not in any previous stage")
		// Without the non-optional need, the optional one is dropped.
		cfg = mustParse(t, `
never-job: {stage: .pre, rules: [{when: never}], script: [echo]}
test-job-optional: {needs: [{job: never-job, optional: true}], script: echo}
`, Options{})
		p := mustEval(t, cfg, gclPush(nil))
		if j := planned(t, p, "test-job-optional"); len(j.Needs) != 0 || !j.NeedsSet {
			t.Errorf("needs = %+v, NeedsSet %v", j.Needs, j.NeedsSet)
		}
	})
	t.Run("12-rules-needs", func(t *testing.T) {
		cfg := gclMust(t, "12-rules-needs", ".gitlab-ci.yml", Options{})
		for branch, want := range map[string]string{"main": "build-production", "master": "build-dev"} {
			p := mustEval(t, cfg, gclPush(map[string]string{"CI_COMMIT_BRANCH": branch}))
			if len(p.Jobs) != 3 {
				t.Errorf("%s: jobs %q", branch, plannedNames(p))
			}
			if got := needNames(planned(t, p, "test-job").Needs); !equalStrings(got, []string{want}) {
				t.Errorf("%s: needs %q, want %s", branch, got, want)
			}
		}
	})
	t.Run("24-needs-dependencies", func(t *testing.T) {
		cfg := gclMust(t, "24-needs-dependencies", ".gitlab-ci.yml", Options{})
		d := job(t, cfg, "deploy-job")
		if !d.NeedsSet || len(d.Needs) != 0 || !equalStrings(d.Dependencies, []string{"one", "two"}) {
			t.Errorf("deploy-job needs %+v set %v deps %q", d.Needs, d.NeedsSet, d.Dependencies)
		}
		_, msgs := gclParse(t, "24-needs-dependencies", "dependencies-not-found/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "test-job job: undefined dependency: invalid")
		_, msgs = gclParse(t, "24-needs-dependencies", "needs-contains-dependencies/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "jobs:test-job dependencies the two should be part of needs")
		cfg = gclMust(t, "24-needs-dependencies", "needs-artifacts/.gitlab-ci.yml", Options{})
		want := []Need{{Job: "one", Artifacts: false}, {Job: "two", Artifacts: true}}
		if got := job(t, cfg, "test-job").Needs; !reflect.DeepEqual(got, want) {
			t.Errorf("needs = %+v, want %+v", got, want)
		}
	})
}

func TestGCLWhen(t *testing.T) {
	t.Run("05-when-on-failure", func(t *testing.T) {
		cfg := gclMust(t, "05-when-on-failure", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		for name, when := range map[string]string{"pre-job": "on_success", "build-job": "on_success", "test-job": "on_failure", "deploy-job": "on_failure"} {
			if got := planned(t, p, name).When; got != when {
				t.Errorf("%s when %s, want %s", name, got, when)
			}
		}
	})
	t.Run("06-when-always", func(t *testing.T) {
		cfg := gclMust(t, "06-when-always", ".gitlab-ci.yml", Options{})
		if j := job(t, cfg, "test-job"); j.When != "always" || j.Stage != "test" {
			t.Errorf("test-job %+v", j)
		}
	})
	t.Run("07-manual", func(t *testing.T) {
		cfg := gclMust(t, "07-manual", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		pre := planned(t, p, "pre-job")
		if pre.When != "manual" || pre.AllowFailure || varMap(pre.ExtraVariables)["VAL"] != "im a rules variable" {
			t.Errorf("pre-job when %s allow_failure %v extra %+v", pre.When, pre.AllowFailure, pre.ExtraVariables)
		}
		if b := planned(t, p, "build-job"); b.When != "manual" || b.AllowFailure {
			t.Errorf("build-job when %s allow_failure %v", b.When, b.AllowFailure)
		}
		if d := planned(t, p, "deploy-job"); d.Stage != "test" || d.When != "on_success" {
			t.Errorf("deploy-job %+v", d)
		}
		// Job-level when: manual defaults allow_failure to true.
		cfg = mustParse(t, "m: {script: x, when: manual}\n", Options{})
		if j := cfg.Jobs[0]; !j.AllowFailure || j.AllowFailureSet {
			t.Errorf("manual job allow_failure %v set %v", j.AllowFailure, j.AllowFailureSet)
		}
	})
	t.Run("08-never", func(t *testing.T) {
		cfg := gclMust(t, "08-never", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		if got := plannedNames(p); !equalStrings(got, []string{"test-job"}) {
			t.Errorf("jobs %q", got)
		}
		_, msgs := gclParse(t, "08-never", "when/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "jobs:test-job when should be one of: on_success, on_failure, always, manual, delayed")
	})
	t.Run("09-script-failures", func(t *testing.T) {
		cfg := gclMust(t, "09-script-failures", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		type af struct {
			allow bool
			codes []int
		}
		want := map[string]af{
			"test-job":                       {false, nil},
			"allow-failure-job":              {true, nil},
			"exit_code[number] allowed":      {false, []int{1}},
			"exit_code[number[]] allowed":    {false, []int{1, 3}},
			"rules:allow_failure precedence": {false, nil},
			"rules:without allow_failure":    {false, []int{137}},
		}
		for name, w := range want {
			j := planned(t, p, name)
			if j.AllowFailure != w.allow || !reflect.DeepEqual(j.AllowFailureExitCodes, w.codes) {
				t.Errorf("%s: allow_failure %v codes %v, want %v %v", name, j.AllowFailure, j.AllowFailureExitCodes, w.allow, w.codes)
			}
		}
		if got := needNames(planned(t, p, "deploy-job").Needs); !equalStrings(got, []string{"test-job"}) {
			t.Errorf("deploy-job needs %q", got)
		}
	})
}

func TestGCLRules(t *testing.T) {
	t.Run("10-rules-exists", func(t *testing.T) {
		root := "testdata/gcl/10-rules-exists"
		cfg := gclMust(t, "10-rules-exists", ".gitlab-ci.yml", Options{})
		ctx := gclPush(map[string]string{"DIR": "existsDir/existDirNested"})
		ctx.Exists = dirFS(root).Exists
		p := mustEval(t, cfg, ctx)
		want := []string{"executed-job-file", "executed-job-paths", "executed-job-dir", "executed-job-dir-recursive", "var-expand-test"}
		if got := plannedNames(p); !equalStrings(got, want) {
			t.Errorf("jobs = %q, want %q", got, want)
		}
	})
	t.Run("11-rules-changes", func(t *testing.T) {
		for _, file := range []string{".gitlab-ci.yml", ".gitlab-ci-2.yml"} {
			cfg := gclMust(t, "11-rules-changes", file, Options{})
			ctx := gclPush(nil)
			ctx.ChangedFiles = func() ([]string, error) { return []string{"foo"}, nil }
			p := mustEval(t, cfg, ctx)
			if got := plannedNames(p); !equalStrings(got, []string{"alpine", "matrix: [foo]"}) {
				t.Errorf("%s: jobs %q", file, got)
			}
			ctx.ChangedFiles = func() ([]string, error) { return []string{"bar"}, nil }
			wantPipelineErr(t, cfg, ctx, msgNoJobs)
			// Without a diff (tags, schedules, web...) changes: is true.
			ctx.ChangedFiles = nil
			if p := mustEval(t, cfg, ctx); len(p.Jobs) != 2 {
				t.Errorf("%s: no diff: jobs %q", file, plannedNames(p))
			}
		}
	})
	t.Run("13-workflow-rules-variables", func(t *testing.T) {
		cfg := gclMust(t, "13-workflow-rules-variables", ".gitlab-ci.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		if varMap(p.WorkflowVariables)["WORKFLOW_VAR"] != "from-workflow-rules" {
			t.Errorf("workflow variables %+v", p.WorkflowVariables)
		}
		cfg = gclMust(t, "13-workflow-rules-variables", ".gitlab-ci-no-match.yml", Options{})
		wantPipelineErr(t, cfg, gclPush(nil), msgWorkflowFilter)
		cfg = gclMust(t, "13-workflow-rules-variables", ".gitlab-ci-job-override.yml", Options{})
		p = mustEval(t, cfg, gclPush(nil))
		if varMap(planned(t, p, "test-job").Variables)["WORKFLOW_VAR"] != "from-job" {
			t.Error("job variables must override workflow:rules:variables")
		}
	})
	t.Run("14-include-rules", func(t *testing.T) {
		ctx := gclPush(map[string]string{"CI_COMMIT_TAG": "1.0.0"})
		cfg := gclMust(t, "14-include-rules", ".gitlab-ci.yml", Options{Context: &ctx})
		if got := jobNames(cfg.Jobs); !equalStrings(got, []string{"build-job", "test-job"}) {
			t.Errorf("jobs %q", got)
		}
		if s := job(t, cfg, "build-job").Script; !equalStrings(s, []string{`echo "This should appear"`}) {
			t.Errorf("build-job came from the wrong file: %q", s)
		}
		// On real GitLab GITLAB_CI is "true": the other file is included.
		ctx = gclPush(map[string]string{"GITLAB_CI": "true"})
		cfg = gclMust(t, "14-include-rules", ".gitlab-ci.yml", Options{Context: &ctx})
		if s := job(t, cfg, "build-job").Script; !equalStrings(s, []string{`echo "This should not appear"`}) || len(cfg.Jobs) != 1 {
			t.Errorf("GITLAB_CI=true: jobs %q script %q", jobNames(cfg.Jobs), s)
		}
	})
}

func TestGCLIncludeLocal(t *testing.T) {
	ctx := gclPush(map[string]string{"CI_INCLUDE_LOCAL": "/.gitlab-ci-base.yml"})
	cases := []struct {
		file string
		ctx  *EvalContext
		jobs []string
		err  string
	}{
		{file: ".gitlab-ci.yml", ctx: &ctx, jobs: []string{"build-job"}},
		{file: ".gitlab-ci-short-list.yml", jobs: []string{"test-job"}},
		{file: ".gitlab-ci-short-single.yml", jobs: []string{"deploy-job"}},
		{file: ".gitlab-ci-invalid-config-directory-traversal.yml", err: "Local file `../include-local/.gitlab-ci.yml` does not exist!"},
		{file: ".gitlab-ci-invalid-config-relative-path.yml", err: "Included file `` does not have YAML extension!"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			cfg, msgs := gclParse(t, "15-include-local", c.file, Options{Context: c.ctx})
			if c.err != "" {
				wantErr(t, msgs, c.err)
				return
			}
			if msgs != nil {
				t.Fatal(msgs)
			}
			if got := jobNames(cfg.Jobs); !equalStrings(got, c.jobs) {
				t.Errorf("jobs %q, want %q", got, c.jobs)
			}
		})
	}
	src, _ := os.ReadFile("testdata/gcl/15-include-local/.gitlab-ci-short-single.yml")
	_, err := Parse(src, Options{})
	wantErr(t, msgs2(err), "Local file `.gitlab-ci-short-single-base.yml` does not have project!")
}

func TestGCLVariables(t *testing.T) {
	t.Run("expand", func(t *testing.T) {
		cfg := gclMust(t, "16-variables", ".gitlab-ci-4.yml", Options{})
		want := []Variable{{Key: "DEFAULT_VAR_1", Value: "1", Expand: true}, {Key: "DEFAULT_VAR_2", Value: "2 $DEFAULT_VAR_1"},
			{Key: "DEFAULT_VAR_3", Value: "3 $DEFAULT_VAR_1", Expand: true}, {Key: "DEFAULT_VAR_4", Value: "4 $DEFAULT_VAR_1", Expand: true}}
		if !reflect.DeepEqual(cfg.Variables, want) {
			t.Errorf("globals %+v", cfg.Variables)
		}
		j := job(t, cfg, "job")
		if len(j.Variables) != 4 || j.Variables[1].Expand || !j.Variables[2].Expand || !j.Variables[3].Expand {
			t.Errorf("job variables %+v", j.Variables)
		}
		if len(j.GlobalVariables) != 4 {
			t.Errorf("inherited globals %+v", j.GlobalVariables)
		}
	})
	t.Run("names and nested refs", func(t *testing.T) {
		cfg := gclMust(t, "16-variables", ".gitlab-ci.yml", Options{})
		want := []string{"test ${URL_${ENV}}", "test ${${ENV}_URL}", "docker-executor variables with '", "docker-executor services variables with '"}
		if got := jobNames(cfg.Jobs); !equalStrings(got, want) {
			t.Errorf("jobs %q", got)
		}
		if v := varMap(cfg.Jobs[0].Variables); v["URL"] != "${URL_${ENV}}" || v["ENV"] != "DEV" {
			t.Errorf("variables %v", v)
		}
		if s := cfg.Jobs[0].Script; !equalStrings(s, []string{"echo $URL"}) {
			t.Errorf("script from extends: %q", s)
		}
	})
	t.Run("environment and rules variables", func(t *testing.T) {
		cfg := gclMust(t, "16-variables", ".gitlab-ci-1.yml", Options{})
		if e := cfg.Jobs[0].Environment; e == nil || e.Name != "review/$CI_JOB_STAGE/deploy" {
			t.Errorf("environment %+v (expansion is the runner's job)", e)
		}
		cfg = gclMust(t, "16-variables", ".gitlab-ci-2.yml", Options{})
		p := mustEval(t, cfg, gclPush(nil))
		if v := varMap(p.Jobs[0].ExtraVariables); v["PIPELINE_ENVIRONMENT"] != "test" {
			t.Errorf("rules variables %v", v)
		}
	})
	t.Run("escaping and null", func(t *testing.T) {
		cfg := gclMust(t, "16-variables", "variable-escaping/.gitlab-ci.yml", Options{})
		if v := varMap(cfg.Jobs[0].Variables); v["LS_CMD"] != `ls "$FLAGS" $$TMP_DIR` {
			t.Errorf("LS_CMD %q", v["LS_CMD"])
		}
		cfg = gclMust(t, "16-variables", "variables-null/.gitlab-ci.yml", Options{})
		if v := varMap(cfg.Variables); v["EMPTY_GLOBAL_VAR"] != "" || len(cfg.Variables) != 1 {
			t.Errorf("globals %+v", cfg.Variables)
		}
		if v := cfg.Jobs[0].Variables; len(v) != 1 || v[0].Value != "" {
			t.Errorf("job variables %+v", v)
		}
	})
	t.Run("order", func(t *testing.T) {
		cfg := gclMust(t, "16-variables", "variable-order/.gitlab-ci.yml", Options{})
		j := cfg.Jobs[0]
		if g := varMap(j.GlobalVariables); g["PIPELINE_VARIABLE"] != "pipeline-value" || g["CI_PIPELINE_ID"] != "pipeline-value" {
			t.Errorf("globals %v", g)
		}
		if cfg.Variables[0].Description != "Random description" {
			t.Errorf("description %+v", cfg.Variables[0])
		}
		if v := varMap(j.Variables); v["OVERRIDDEN_BY_JOB"] != "job-value" || j.Environment.Name != "notprod" {
			t.Errorf("job %v env %+v", v, j.Environment)
		}
	})
	t.Run("21-duplicated-keys-anchors", func(t *testing.T) {
		cfg := gclMust(t, "21-duplicated-keys-anchors", ".gitlab-ci.yml", Options{})
		if g := varMap(cfg.Variables); len(g) != 1 || g["BAR"] != "2" {
			t.Errorf("globals %v: the last duplicate key wins", g)
		}
		if v := varMap(cfg.Jobs[0].Variables); len(v) != 1 || v["BAR"] != "2" {
			t.Errorf("duplicated-keys %v", v)
		}
		if v := varMap(cfg.Jobs[1].Variables); len(v) != 1 || v["FOO"] != "1" {
			t.Errorf("anchor on overwritten node %v", v)
		}
		if v := cfg.Jobs[2].Variables; len(v) != 0 {
			t.Errorf("no job variables expected: %+v", v)
		}
	})
}

func TestGCLExtendsInherit(t *testing.T) {
	t.Run("17-extends", func(t *testing.T) {
		cfg := gclMust(t, "17-extends", ".gitlab-ci.yml", Options{})
		if got := jobNames(cfg.Jobs); !equalStrings(got, []string{"test-job"}) {
			t.Fatalf("jobs %q", got)
		}
		j := cfg.Jobs[0]
		if j.Stage != "test" || !equalStrings(j.BeforeScript, []string{`echo "Test something (before_script)"`}) ||
			!equalStrings(j.Script, []string{`echo "Test something"`}) ||
			!equalStrings(j.AfterScript, []string{`echo "Test something (after_script)"`}) {
			t.Errorf("test-job %+v", j)
		}
		_, msgs := Parse([]byte("a: {extends: b, script: x}\nb: {extends: a, script: y}\n"), Options{})
		wantErr(t, msgs2(msgs), "a: circular dependency detected in `extends`")
	})
	t.Run("18-inherit default", func(t *testing.T) {
		cfg := gclMust(t, "18-inherit", ".gitlab-ci-inherit-default.yml", Options{})
		all := job(t, cfg, "inherit-default-true")
		if all.Image == nil || all.Image.Name != "busybox" || len(all.BeforeScript) != 1 || len(all.AfterScript) != 1 {
			t.Errorf("inherit-default-true %+v", all)
		}
		none := job(t, cfg, "inherit-default-false")
		if none.Image != nil || none.BeforeScript != nil || none.AfterScript != nil {
			t.Errorf("inherit-default-false %+v", none)
		}
		some := job(t, cfg, "inherit-default-before_script_and_image")
		if some.Image == nil || len(some.BeforeScript) != 1 || some.AfterScript != nil {
			t.Errorf("partial %+v", some)
		}
	})
	t.Run("18-inherit variables", func(t *testing.T) {
		cfg := gclMust(t, "18-inherit", ".gitlab-ci-inherit-variables.yml", Options{})
		if v := job(t, cfg, "job1").GlobalVariables; len(v) != 0 {
			t.Errorf("job1 %+v", v)
		}
		if v := varMap(job(t, cfg, "job2").GlobalVariables); len(v) != 2 || v["GCL_TESTS_VAR3"] != "" {
			t.Errorf("job2 %v", v)
		}
	})
	t.Run("20-after-script", func(t *testing.T) {
		cfg := gclMust(t, "20-after-script", ".gitlab-ci.yml", Options{})
		if a := job(t, cfg, "test-job").AfterScript; !equalStrings(a, []string{"rm /tmp/cache", `echo "Cleanup after test"`}) {
			t.Errorf("test-job after_script %q", a)
		}
		if a := job(t, cfg, "build-job").AfterScript; !equalStrings(a, []string{`echo "Cleanup after test"`}) {
			t.Errorf("build-job after_script %q", a)
		}
		if !equalStrings(cfg.Stages, []string{".pre", "build", "test", "deploy", ".post"}) || job(t, cfg, "post-job").Stage != ".post" {
			t.Errorf("stages %q", cfg.Stages)
		}
	})
	t.Run("25-script-forms", func(t *testing.T) {
		cfg := gclMust(t, "25-script-forms", ".gitlab-ci-10-level-deep.yml", Options{})
		if s := cfg.Jobs[0].Script; len(s) != 10 || s[9] != "echo 10" {
			t.Errorf("script %q", s)
		}
		_, msgs := gclParse(t, "25-script-forms", ".gitlab-ci-11-level-deep.yml", Options{})
		wantErr(t, msgs, "jobs:test-job:script config should be a string or a nested array of strings up to 10 levels deep")
		_, msgs = gclParse(t, "25-script-forms", "script-blank/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "jobs:test-job script can't be blank")
		_, msgs = gclParse(t, "25-script-forms", "no-script/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "jobs test-job config should implement the script:, run:, or trigger: keyword")
		cfg = gclMust(t, "25-script-forms", "scripts-as-string/.gitlab-ci.yml", Options{})
		if j := cfg.Jobs[0]; len(j.BeforeScript) != 1 || len(j.Script) != 1 || len(j.AfterScript) != 1 {
			t.Errorf("%+v", j)
		}
		cfg = gclMust(t, "25-script-forms", "before-script-default/.gitlab-ci.yml", Options{})
		if b := cfg.Jobs[0].BeforeScript; !equalStrings(b, []string{`echo "Before test"`}) {
			t.Errorf("before_script %q", b)
		}
	})
}

func msgs2(err error) []string {
	if e, ok := err.(*Errors); ok {
		return e.Messages
	}
	return nil
}

func TestGCLReference(t *testing.T) {
	t.Run("main", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci.yml", Options{})
		j := job(t, cfg, "test-job")
		want := []string{`echo "Ancient"`, `echo "Base"`, `echo "Setting something general up"`, `echo "array root"`, "echo ${MYVAR}"}
		if !equalStrings(j.Script, want) || varMap(j.Variables)["MYVAR"] != "Yoyo" {
			t.Errorf("script %q variables %+v", j.Script, j.Variables)
		}
		if s := job(t, cfg, "issue-909").Script; !equalStrings(s, []string{"echo TEST"}) {
			t.Errorf("issue-909 %q", s)
		}
	})
	t.Run("complex", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci-complex.yml", Options{})
		if v := varMap(cfg.Jobs[0].Variables); v["FOO"] != "foo" {
			t.Errorf("variables %v", v)
		}
	})
	t.Run("issue-899 scalar across includes", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci-issue-899.yml", Options{})
		if img := cfg.Jobs[0].Image; img == nil || img.Name != "docker.io/library/bash" {
			t.Errorf("image %+v", img)
		}
	})
	t.Run("issue-954 global after_script", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci-issue-954.yml", Options{})
		j := cfg.Jobs[0]
		want := []string{"echo Hello from ${CI_JOB_NAME}"}
		if !equalStrings(j.BeforeScript, want) || !equalStrings(j.Script, want) || !equalStrings(j.AfterScript, want) {
			t.Errorf("%+v", j)
		}
	})
	t.Run("extends with referenced variables", func(t *testing.T) {
		// GitLab applies extends before resolving !reference, so a
		// template whose variables: is a !reference is replaced, not
		// merged, by the job's own hash. gcl merges them ({HESTHEST,
		// NICENESS}); we follow GitLab's order.
		cfg := gclMust(t, "19-reference", ".gitlab-ci-1.yml", Options{})
		if v := varMap(cfg.Jobs[0].Variables); len(v) != 1 || v["NICENESS"] != "byrdalos" {
			t.Errorf("variables %v", v)
		}
		cfg = gclMust(t, "19-reference", ".gitlab-ci-2.yml", Options{})
		if v := varMap(cfg.Jobs[0].Variables); v["NICENESS"] != "byrdalos" {
			t.Errorf("variables %v", v)
		}
	})
	t.Run("rules reference forms", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci-3.yml", Options{})
		r := cfg.Jobs[0].Rules
		if len(r) != 1 || r[0].If != `$MY_VAR == "MY_VAL"` || r[0].When != "always" {
			t.Errorf("rules %+v", r)
		}
		p := mustEval(t, cfg, gclPush(nil))
		if len(p.Jobs) != 1 || p.Jobs[0].When != "always" {
			t.Errorf("job variables must be visible to its rules: %q", plannedNames(p))
		}
	})
	t.Run("depth", func(t *testing.T) {
		cfg := gclMust(t, "19-reference", ".gitlab-ci-10-level-deep.yml", Options{})
		if s := cfg.Jobs[0].Script; !equalStrings(s, []string{"echo test"}) {
			t.Errorf("script %q", s)
		}
		_, msgs := gclParse(t, "19-reference", ".gitlab-ci-11-level-deep.yml", Options{})
		wantErr(t, msgs, "jobs:test:script config should be a string or a nested array of strings up to 10 levels deep")
	})
	t.Run("circular", func(t *testing.T) {
		_, msgs := gclParse(t, "19-reference", "reference-circular-chain/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, `!reference ["test-job", "script"] is part of a circular chain`)
		_, err := Parse([]byte("job: {script: !reference [nope, script]}\n"), Options{})
		wantErr(t, msgs2(err), `!reference ["nope", "script"] could not be found`)
	})
}

func TestGCLParallel(t *testing.T) {
	t.Run("matrix", func(t *testing.T) {
		cfg := gclMust(t, "22-parallel-matrix", ".gitlab-ci.yml", Options{})
		want := []string{"pre-job", "build-job: [foo]", "build-job: [bar]", "build-job: [beb]",
			"test-job: [foo, dev]", "test-job: [foo, sta]", "test-job: [foo, pro]",
			"test-job: [bar, dev]", "test-job: [bar, sta]", "test-job: [bar, pro]", "test-job: [beb]"}
		if got := jobNames(cfg.Jobs); !equalStrings(got, want) {
			t.Fatalf("jobs %q", got)
		}
		b := job(t, cfg, "build-job: [bar]")
		if b.ParallelIndex != 2 || b.ParallelTotal != 3 || varMap(b.Variables)["NAME"] != "bar" {
			t.Errorf("build-job: [bar] %d/%d %+v", b.ParallelIndex, b.ParallelTotal, b.Variables)
		}
		tj := job(t, cfg, "test-job: [beb]")
		if tj.ParallelIndex != 7 || tj.ParallelTotal != 7 || varMap(tj.Variables)["TIER"] != "" {
			t.Errorf("test-job: [beb] %d/%d %+v", tj.ParallelIndex, tj.ParallelTotal, tj.Variables)
		}
		wantNeeds := []string{"build-job: [foo]", "build-job: [bar]", "build-job: [beb]", "pre-job"}
		if got := needNames(tj.Needs); !equalStrings(got, wantNeeds) {
			t.Errorf("needs %q", got)
		}
	})
	t.Run("parallel N", func(t *testing.T) {
		cfg := gclMust(t, "22-parallel-matrix", "parallel/.gitlab-ci.yml", Options{})
		if got := jobNames(cfg.Jobs); !equalStrings(got, []string{"test-job 1/2", "test-job 2/2", "single-job 1/1"}) {
			t.Errorf("jobs %q", got)
		}
	})
	t.Run("needs parallel matrix", func(t *testing.T) {
		// GitLab builds need names from the selector and requires them to
		// exist, so the partial selector of gcl's case is an error.
		_, msgs := gclParse(t, "22-parallel-matrix", "needs-parallel-matrix-static/.gitlab-ci.yml", Options{})
		wantErr(t, msgs, "test-partial job: undefined need: build-multi: [x64]")
		src, _ := os.ReadFile("testdata/gcl/22-parallel-matrix/needs-parallel-matrix-static/.gitlab-ci.yml")
		s := string(src)
		i := strings.Index(s, "# Partial selector")
		k := strings.Index(s, "# Full selector")
		cfg := mustParse(t, s[:i]+s[k:], Options{})
		for name, want := range map[string][]string{
			"test-single": {"build-job: [foo]"},
			"test-array":  {"build-job: [foo]", "build-job: [bar]"},
			"test-full":   {"build-multi: [x64, linux]"},
		} {
			if got := needNames(job(t, cfg, name).Needs); !equalStrings(got, want) {
				t.Errorf("%s needs %q, want %q", name, got, want)
			}
		}
		p := mustEval(t, cfg, gclPush(nil))
		if j := planned(t, p, "test-optional-zero"); len(j.Needs) != 0 {
			t.Errorf("optional need kept: %+v", j.Needs)
		}
	})
}

func TestGCLTrigger(t *testing.T) {
	cfg := gclMust(t, "23-trigger-parent-child", ".gitlab-ci-1.yml", Options{})
	if tr := cfg.Jobs[0].Trigger; tr == nil || !equalStrings(tr.Include, []string{"child-pipeline.yml"}) || !tr.Forward.YAMLVariables {
		t.Errorf("trigger %+v", tr)
	}
	if len(cfg.Jobs[0].GlobalVariables) != 1 {
		t.Errorf("globals %+v", cfg.Jobs[0].GlobalVariables)
	}
	cfg = gclMust(t, "23-trigger-parent-child", ".gitlab-ci-2.yml", Options{})
	if len(cfg.Jobs[0].GlobalVariables) != 0 {
		t.Errorf("inherit variables false: %+v", cfg.Jobs[0].GlobalVariables)
	}
	cfg = gclMust(t, "23-trigger-parent-child", ".gitlab-ci-3.yml", Options{})
	if v := varMap(cfg.Jobs[0].GlobalVariables); len(v) != 2 || v["GLOBAL_VAR_2"] != "" {
		t.Errorf("inherit list: %v", v)
	}
	cfg = gclMust(t, "23-trigger-parent-child", ".gitlab-ci-5.yml", Options{})
	if tr := job(t, cfg, "dynamic-pipeline").Trigger; len(tr.IncludeArtifacts) != 1 || tr.IncludeArtifacts[0] != (TriggerArtifact{"generated-config.yml", "generate-config"}) {
		t.Errorf("artifact trigger %+v", tr)
	}
	cfg = gclMust(t, "23-trigger-parent-child", ".gitlab-ci-8.yml", Options{})
	if tr := cfg.Jobs[0].Trigger; !equalStrings(tr.Include, []string{"$PROJECT_DIR/.gitlab-ci.yml"}) {
		t.Errorf("trigger include %q", tr.Include)
	}
	cfg = gclMust(t, "23-trigger-parent-child", "trigger/.gitlab-ci.yml", Options{})
	if tr := job(t, cfg, "remote-trigger").Trigger; tr.Project != "mytarget/project" || tr.Branch != "master" {
		t.Errorf("multi-project trigger %+v", tr)
	}
	child := gclMust(t, "23-trigger-parent-child", "nested-child-1.yml", Options{})
	if tr := child.Jobs[0].Trigger; !equalStrings(tr.Include, []string{"nested-child-2.yml"}) {
		t.Errorf("string include %q", tr.Include)
	}
}
