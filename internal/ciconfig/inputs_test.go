package ciconfig

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const inputsHeader = `spec:
  inputs:
    env:
      options: [staging, production]
      default: staging
    version:
      regex: ^v\d+\.\d+$
    replicas:
      type: number
      default: 1
    dry:
      type: boolean
      default: false
    targets:
      type: array
      default: [a, b]
    note:
      description: free text
      default: ""
---
`

const inputsBody = `deploy:
  script:
    - echo env=$[[ inputs.env ]] version=$[[ inputs.version ]] replicas=$[[ inputs.replicas ]] dry=$[[ inputs.dry ]]
    - echo $[[ inputs.note | posix_escape ]]
    - echo $[[ inputs.version | truncate(1,1) ]]
    - echo $[[ inputs.note | expand_vars ]]
  parallel: $[[ inputs.replicas ]]
`

func TestInputsInterpolate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		want   []string
		par    int
	}{
		{"defaults", map[string]any{"version": "v1.2"}, []string{"echo env=staging version=v1.2 replicas=1 dry=false", "echo ''", "echo 1", "echo "}, 0},
		{"form strings coerced", map[string]any{"version": "v3.4", "replicas": "3", "dry": "true", "env": "production"},
			[]string{"echo env=production version=v3.4 replicas=3 dry=true", "echo ''", "echo 3", "echo "}, 3},
		{"json number and escape", map[string]any{"version": "v9.0", "replicas": float64(2), "note": "a b;$(rm -rf /)\n", "targets": []any{"x"}},
			[]string{"echo env=staging version=v9.0 replicas=2 dry=false", `echo a\ b\;\$\(rm\ -rf\ /\)'` + "\n" + `'`, "echo 9", "echo a b;$(rm -rf /)\n"}, 2},
		{"expand_vars", map[string]any{"version": "v1.0", "note": "$HOME-x"}, []string{"echo env=staging version=v1.0 replicas=1 dry=false", `echo \$HOME-x`, "echo 1", "echo /root-x"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, inputsHeader+inputsBody, Options{Inputs: tc.inputs, Context: &EvalContext{Variables: vars(map[string]string{"HOME": "/root"})}})
			got := cfg.Jobs[0].Script
			if tc.par > 1 {
				if len(cfg.Jobs) != tc.par {
					t.Fatalf("jobs = %v, want %d parallel", jobNames(cfg.Jobs), tc.par)
				}
			}
			if !equalStrings(got, tc.want) {
				t.Fatalf("script = %q, want %q", got, tc.want)
			}
			if cfg.Inputs["version"] == nil || cfg.Inputs["env"] == nil {
				t.Fatalf("resolved inputs = %v", cfg.Inputs)
			}
		})
	}
}

func TestInputsRefused(t *testing.T) {
	flood := map[string]any{}
	for i := 0; i < 21; i++ {
		flood[fmt.Sprintf("k%d", i)] = "x"
	}
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		want   string
	}{
		{"required", nil, "`version` input: required value has not been provided"},
		{"regex miss", map[string]any{"version": "1.2"}, "`version` input: provided value does not match required RegEx pattern"},
		{"option", map[string]any{"version": "v1.0", "env": "prod"}, "`env` input: `prod` cannot be used because it is not in the list of allowed options"},
		{"unknown", map[string]any{"version": "v1.0", "zzz": "1", "aaa": "2"}, "unknown input arguments: aaa, zzz"},
		{"number", map[string]any{"version": "v1.0", "replicas": "three"}, "`replicas` input: provided value is not a number"},
		{"boolean", map[string]any{"version": "v1.0", "dry": "yes"}, "`dry` input: provided value is not a boolean"},
		{"string given number", map[string]any{"version": float64(1)}, "`version` input: provided value is not a string"},
		{"array", map[string]any{"version": "v1.0", "targets": "x"}, "`targets` input: provided value is not an array"},
		{"flood", flood, "too many inputs: 21 given, at most 20 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(inputsHeader+inputsBody), Options{Inputs: tc.inputs})
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *InputError", err)
			}
			if !strings.Contains(ie.Error(), tc.want) {
				t.Fatalf("err = %q, want %q", ie.Error(), tc.want)
			}
		})
	}
}

func TestInputsSpecErrors(t *testing.T) {
	many := "spec:\n  inputs:\n"
	for i := 0; i < 21; i++ {
		many += fmt.Sprintf("    i%d:\n      default: x\n", i)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"bad type", "spec:\n  inputs:\n    a:\n      type: int\n---\nj:\n  script: x\n", "`a` input: unknown input type `int`"},
		{"regex on number", "spec:\n  inputs:\n    a:\n      type: number\n      regex: ^1$\n---\nj:\n  script: x\n", "`a` input: RegEx validation can only be used with string inputs"},
		{"default type", "spec:\n  inputs:\n    a:\n      type: boolean\n      default: 3\n---\nj:\n  script: x\n", "`a` input: default value is not a boolean"},
		{"default not in options", "spec:\n  inputs:\n    a:\n      options: [x]\n      default: y\n---\nj:\n  script: x\n", "`a` input: `y` cannot be used"},
		{"unknown key", "spec:\n  inputs:\n    a:\n      default: x\n---\nj:\n  script: $[[ inputs.b ]]\n", "unknown interpolation key: `b`"},
		{"unknown function", "spec:\n  inputs:\n    a:\n      default: x\n---\nj:\n  script: $[[ inputs.a | shout ]]\n", "no function matching `shout`"},
		{"too many declared", many + "---\nj:\n  script: x\n", "too many inputs: 21 given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), Options{})
			var ce *Errors
			if !errors.As(err, &ce) || !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("err = %v, want config error %q", err, tc.want)
			}
		})
	}
}

func TestInputsWithoutHeader(t *testing.T) {
	// No header: nothing is interpolated (GitLab leaves the text alone) and
	// any input is unknown.
	cfg := mustParse(t, "j:\n  script: echo $[[ inputs.a ]]\n", Options{})
	if cfg.Jobs[0].Script[0] != "echo $[[ inputs.a ]]" || cfg.Inputs != nil {
		t.Fatalf("script = %q inputs = %v", cfg.Jobs[0].Script, cfg.Inputs)
	}
	_, err := Parse([]byte("j:\n  script: x\n"), Options{Inputs: map[string]any{"a": "1"}})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Error() != "unknown input arguments: a" {
		t.Fatalf("err = %v", err)
	}
}

func TestInputValueCannotInjectYAML(t *testing.T) {
	// Interpolation happens on parsed values, so a newline or a YAML
	// mapping in an input stays text inside one script line.
	src := "spec:\n  inputs:\n    a:\n---\nj:\n  script: echo $[[ inputs.a ]]\n"
	cfg := mustParse(t, src, Options{Inputs: map[string]any{"a": "x\nevil:\n  script: pwn"}})
	if len(cfg.Jobs) != 1 || cfg.Jobs[0].Script[0] != "echo x\nevil:\n  script: pwn" {
		t.Fatalf("jobs = %v script = %q", jobNames(cfg.Jobs), cfg.Jobs[0].Script)
	}
}

func TestTriggerInputsKeyword(t *testing.T) {
	cfg := mustParse(t, "b:\n  trigger:\n    project: g/p\n    inputs:\n      env: prod\n      n: 2\n      list: [a, b]\n", Options{})
	in := cfg.Jobs[0].Trigger.Inputs
	if in["env"] != "prod" || in["n"] != int64(2) || fmt.Sprint(in["list"]) != "[a b]" {
		t.Fatalf("trigger inputs = %#v", in)
	}
	many := "b:\n  trigger:\n    project: g/p\n    inputs:\n"
	for i := 0; i < 21; i++ {
		many += fmt.Sprintf("      i%d: x\n", i)
	}
	for _, tc := range []struct{ src, want string }{
		{"b:\n  trigger:\n    project: g/p\n    inputs: [a]\n", "jobs:b:trigger:inputs config should be a hash"},
		{"b:\n  trigger:\n    include: c.yml\n    inputs:\n      a: 1\n", "jobs:b:trigger:inputs can only be used with trigger:project"},
		{many, "jobs:b:trigger:inputs too many inputs: 21 given"},
	} {
		_, err := Parse([]byte(tc.src), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestLintInputs(t *testing.T) {
	src := "spec:\n  inputs:\n    a:\n    b:\n---\nj:\n  script: echo $[[ inputs.a ]]\n"
	res := Lint([]byte(src), Options{}, nil)
	if res.Valid || len(res.Errors) != 2 || res.Errors[0] != "`a` input: required value has not been provided" || res.Errors[1] != "`b` input: required value has not been provided" {
		t.Fatalf("lint = %#v", res)
	}
	res = Lint([]byte(src), Options{Inputs: map[string]any{"a": "x", "b": "y"}}, nil)
	if !res.Valid || res.Jobs[0].Script[0] != "echo x" {
		t.Fatalf("lint with inputs = %#v", res)
	}
}

const rulesHeader = `spec:
  inputs:
    env:
      options: [development, staging, production]
      default: development
    strategy:
      options: [rolling, canary]
      default: rolling
    tier:
      rules:
        - if: $[[ inputs.env ]] == "development"
          options: [small, medium]
          default: small
        - if: $[[ inputs.env ]] == "production" && $[[ inputs.strategy ]] == "canary"
          options: [large, xlarge]
          default: large
        - if: $[[ inputs.env ]] == "production"
          options: [large, xlarge]
    replicas:
      type: number
      rules:
        - if: $[[ inputs.tier ]] == "large" || $[[ inputs.tier ]] == "xlarge"
          default: 3
        - options: [1, 2]
          default: 1
---
deploy:
  script: echo $[[ inputs.env ]] $[[ inputs.strategy ]] $[[ inputs.tier ]] $[[ inputs.replicas ]]
`

func TestInputRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		want   string
		err    string
	}{
		{"first rule default", nil, "echo development rolling small 1", ""},
		{"first rule options", map[string]any{"tier": "medium"}, "echo development rolling medium 1", ""},
		{"option outside the matched rule", map[string]any{"tier": "large"}, "", "`tier` input: `large` cannot be used because it is not in the list of allowed options"},
		{"first matching rule wins", map[string]any{"env": "production", "strategy": "canary"}, "echo production canary large 3", ""},
		{"matched rule without default is required", map[string]any{"env": "production"}, "", "`tier` input: required value has not been provided"},
		{"matched rule without default given", map[string]any{"env": "production", "tier": "xlarge", "replicas": "7"}, "echo production rolling xlarge 7", ""},
		{"fallback options", map[string]any{"replicas": 5}, "", "`replicas` input: `5` cannot be used because it is not in the list of allowed options"},
		{"no rule matches: empty, any value", map[string]any{"env": "staging"}, "echo staging rolling  1", ""},
		{"no rule matches: value given", map[string]any{"env": "staging", "tier": "huge"}, "echo staging rolling huge 1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(rulesHeader), Options{Inputs: tc.inputs})
			if tc.err != "" {
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(ie.Error(), tc.err) {
					t.Fatalf("err = %v, want input error %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Jobs[0].Script[0]; got != tc.want {
				t.Fatalf("script = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInputRulesSpecErrors(t *testing.T) {
	hdr := func(body string) string {
		return "spec:\n  inputs:\n    a:\n      default: x\n" + body + "---\nj:\n  script: x\n"
	}
	for _, tc := range []struct{ name, src, want string }{
		{"with options", hdr("    b:\n      options: [x]\n      rules:\n        - options: [x]\n"), "`b` input: these keys cannot be used together: rules, options"},
		{"with default", hdr("    b:\n      default: x\n      rules:\n        - options: [x]\n"), "`b` input: these keys cannot be used together: rules, default"},
		{"not an array", hdr("    b:\n      rules: x\n"), "`b` input: rules should be an array"},
		{"unknown key", hdr("    b:\n      rules:\n        - when: never\n"), "`b` input: rule[0] config contains unknown keys: when"},
		{"if alone", hdr("    b:\n      rules:\n        - if: $[[ inputs.a ]] == \"x\"\n"), "`b` input: rule[0] rule with 'if' must define 'options' or 'default'"},
		{"fallback without options", hdr("    b:\n      rules:\n        - default: y\n"), "`b` input: rule[0] fallback rule must define 'options'"},
		{"bad expression", hdr("    b:\n      rules:\n        - if: $[[ inputs.a ]] ==\n          default: y\n"), "`b` input: rule[0] if invalid expression syntax"},
		{"default outside options", hdr("    b:\n      rules:\n        - if: $[[ inputs.a ]] == \"x\"\n          options: [p]\n          default: q\n"), "`b` input: rule[0] `q` cannot be used"},
		{"options on boolean", hdr("    b:\n      type: boolean\n      rules:\n        - options: [true]\n"), "`b` input: rule[0] Options can only be used with string and number inputs"},
		{"undefined input", hdr("    b:\n      rules:\n        - if: $[[ inputs.zz ]] == \"x\" || $[[ inputs.yy ]] == \"x\"\n          default: y\n"), "`b` input: rule[0] references undefined inputs: zz, yy"},
		{"cycle", "spec:\n  inputs:\n    a:\n      rules:\n        - if: $[[ inputs.b ]] == \"x\"\n          default: y\n    b:\n      rules:\n        - if: $[[ inputs.a ]] == \"x\"\n          default: y\n---\nj:\n  script: x\n", "`a` input: circular dependency detected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), Options{})
			var ce *Errors
			if !errors.As(err, &ce) || !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("err = %v, want config error %q", err, tc.want)
			}
		})
	}
}

const deployTemplate = `spec:
  inputs:
    stage:
      default: test
    env:
      options: [staging, production]
    replicas:
      type: number
      default: 1
---
"deploy-$[[ inputs.env ]]":
  stage: $[[ inputs.stage ]]
  parallel: $[[ inputs.replicas ]]
  script: echo $[[ inputs.env ]]
`

func TestIncludeInputs(t *testing.T) {
	files := mapFS{
		"templates/deploy.yml": deployTemplate,
		"templates/plain.yml":  "plain:\n  script: echo $[[ inputs.env ]]\n",
	}
	src := `stages: [test, deploy]
include:
  - local: templates/deploy.yml
    inputs:
      env: staging
  - local: templates/deploy.yml
    inputs:
      env: production
      stage: deploy
      replicas: 2
build:
  script: echo $[[ inputs.env ]]
`
	cfg := mustParse(t, src, Options{Files: files})
	got := map[string]string{}
	for _, j := range cfg.Jobs {
		got[j.Name] = j.Stage + ":" + strings.Join(j.Script, ";")
	}
	// The same file twice with other inputs is two includes; the including
	// file's own `$[[ ]]` text is not interpolated (it has no header).
	want := map[string]string{"deploy-staging 1/1": "test:echo staging", "deploy-production 1/2": "deploy:echo production", "deploy-production 2/2": "deploy:echo production", "build": "test:echo $[[ inputs.env ]]"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("jobs = %v, want %v", got, want)
		}
	}

	for _, tc := range []struct{ name, src, want string }{
		{"required", "include:\n  - local: templates/deploy.yml\n", "`templates/deploy.yml`: `env` input: required value has not been provided"},
		{"option", "include:\n  - local: templates/deploy.yml\n    inputs:\n      env: prod\n", "`templates/deploy.yml`: `env` input: `prod` cannot be used because it is not in the list of allowed options"},
		{"type", "include:\n  - local: templates/deploy.yml\n    inputs:\n      env: staging\n      replicas: many\n", "`templates/deploy.yml`: `replicas` input: provided value is not a number"},
		{"unknown", "include:\n  - local: templates/deploy.yml\n    inputs:\n      env: staging\n      zone: eu\n", "`templates/deploy.yml`: unknown input arguments: zone"},
		{"no header", "include:\n  - local: templates/plain.yml\n    inputs:\n      env: staging\n", "`templates/plain.yml`: Given inputs not defined in the `spec` section of the included configuration file"},
		{"not a hash", "include:\n  - local: templates/deploy.yml\n    inputs: [env]\n", "include:inputs config should be a hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src+"j:\n  script: x\n"), Options{Files: files})
			var ce *Errors
			if !errors.As(err, &ce) || !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("err = %v, want config error %q", err, tc.want)
			}
		})
	}
	// The request's inputs belong to the top-level file only.
	top := "spec:\n  inputs:\n    env:\n---\ninclude:\n  - local: templates/deploy.yml\n    inputs:\n      env: $[[ inputs.env ]]\nj:\n  script: echo top $[[ inputs.env ]]\n"
	cfg = mustParse(t, top, Options{Files: files, Inputs: map[string]any{"env": "production"}})
	if cfg.Jobs[0].Name != "deploy-production 1/1" || cfg.Jobs[1].Script[0] != "echo top production" {
		t.Fatalf("jobs = %v %q", jobNames(cfg.Jobs), cfg.Jobs[1].Script)
	}
}

func TestExpandVars(t *testing.T) {
	known := map[string][2]string{"REGION": {"eu", ""}, "NESTED": {"$REGION", ""}, "TOKEN": {"s3cr3t", "masked"}}
	lookup := func(name string) (string, bool, bool) {
		v, ok := known[name]
		return v[0], v[1] == "masked", ok
	}
	src := "spec:\n  inputs:\n    s:\n    n:\n      type: number\n      default: 1\n---\nj:\n  script:\n    - echo $[[ inputs.s | expand_vars ]]\n    - echo $[[ inputs.s ]]\n"
	for _, tc := range []struct{ name, in, want, err string }{
		{"forms", "$REGION-${REGION}-%REGION%", "echo eu-eu-eu", ""},
		{"unknown kept", "$REGION/$UNKNOWN", "echo eu/$UNKNOWN", ""},
		{"one level", "$NESTED", "echo $REGION", ""},
		{"masked refused", "x-$TOKEN", "", "error in `expand_vars` function: variable expansion error: masked variables cannot be expanded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(src), Options{Inputs: map[string]any{"s": tc.in}, Variables: lookup})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Only the block with the function expands; the plain one keeps
			// the text; the config is marked as depending on variables.
			if cfg.Jobs[0].Script[0] != tc.want || cfg.Jobs[0].Script[1] != "echo "+tc.in || !cfg.UsesVariables {
				t.Fatalf("script = %q uses = %v, want %q", cfg.Jobs[0].Script, cfg.UsesVariables, tc.want)
			}
		})
	}
	_, err := Parse([]byte(strings.Replace(src, "inputs.s | expand_vars", "inputs.n | expand_vars", 1)), Options{Inputs: map[string]any{"s": "x"}, Variables: lookup})
	if err == nil || !strings.Contains(err.Error(), "error in `expand_vars` function: invalid input type: expand_vars can only be used with string inputs") {
		t.Fatalf("number input: %v", err)
	}
	cfg := mustParse(t, src, Options{Inputs: map[string]any{"s": "plain"}, Variables: lookup})
	if cfg.UsesVariables {
		t.Fatal("a value without references marked the config as using variables")
	}
}
