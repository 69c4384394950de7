package e2e

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

const includeInputsTemplate = `spec:
  inputs:
    env:
      options: [staging, production]
    tier:
      rules:
        - if: $[[ inputs.env ]] == "production"
          options: [large, xlarge]
          default: large
        - options: [small]
          default: small
---
"deploy-$[[ inputs.env ]]-$[[ inputs.tier ]]":
  script: echo $[[ inputs.env ]]
`

// TestIncludeInputsAndRules: include:inputs give an included file its own
// spec:inputs (interpolated in that file only), trigger:include:inputs do
// the same for a child pipeline, and spec:inputs rules choose options and
// defaults from other inputs; every refusal is GitLab's message with
// nothing created, through the real binary on SQLite and PostgreSQL.
func TestIncludeInputsAndRules(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			var group, p map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Inc"}, "path": {"inc"}, "namespace_id": {jsonID(group["id"])}}, &p)
			id := jsonID(p["id"])
			ci := `spec:
  inputs:
    env:
      default: staging
---
include:
  - local: templates/deploy.yml
    inputs:
      env: $[[ inputs.env ]]
child:
  trigger:
    include:
      - local: templates/deploy.yml
        inputs:
          env: production
          tier: xlarge
    strategy: depend
bad-child:
  trigger:
    include:
      - local: templates/deploy.yml
        inputs:
          env: production
          tier: small
`
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci, "templates/deploy.yml": includeInputsTemplate})
			git(t, w, "push", "-q", s.authURL("in/inc"), "main")
			// The push makes the pipeline and its one good child.
			if !trigWaitFor(30*time.Second, func() bool { return len(s.trigPipelinesOf(id, "per_page=100")) == 2 }) {
				t.Fatalf("push pipelines: %v", s.trigPipelinesOf(id, "per_page=100"))
			}
			pushed := s.trigPipelinesOf(id, "source=push&per_page=100")
			jobNames := func(r trigResp) string {
				var names []string
				for _, j := range r.obj["jobs"].([]any) {
					names = append(names, j.(map[string]any)["name"].(string))
				}
				sort.Strings(names)
				return strings.Join(names, ",")
			}
			api := s.URL + "/api/v4/projects/" + id
			hdr := map[string]string{"PRIVATE-TOKEN": rootToken}
			post := func(body string) trigResp {
				return trigDo(t, "POST", api+"/pipeline", "application/json", strings.NewReader(body), hdr)
			}
			// The request's input reaches the include's inputs; the rules
			// pick the tier's default from env.
			for _, tc := range []struct{ body, want string }{
				{`{"ref":"main","dry_run":true}`, "bad-child,child,deploy-staging-small"},
				{`{"ref":"main","dry_run":true,"inputs":{"env":"production"}}`, "bad-child,child,deploy-production-large"},
			} {
				if got := jobNames(post(tc.body).want(t, 200, tc.body)); got != tc.want {
					t.Fatalf("%s: jobs %s, want %s", tc.body, got, tc.want)
				}
			}
			before := len(s.trigPipelinesOf(id, "per_page=100"))
			// An env outside the included file's options: the included
			// file's message, prefixed with its location; nothing created.
			r := post(`{"ref":"main","inputs":{"env":"prod"}}`).want(t, 400, "include option miss")
			if !strings.Contains(r.raw, "`templates/deploy.yml`: `env` input: `prod` cannot be used because it is not in the list of allowed options") {
				t.Fatalf("include option miss: %s", r.raw)
			}
			if n := len(s.trigPipelinesOf(id, "per_page=100")); n != before {
				t.Fatalf("refused include inputs created a pipeline: %d -> %d", before, n)
			}

			// The push's pipeline: the child got its include:inputs, the
			// bad child (tier outside the production rule's options) failed
			// its bridge and created no child pipeline.
			if len(pushed) != 1 {
				t.Fatalf("push pipelines: %v", pushed)
			}
			pl := pushed[0]
			var bridges []map[string]any
			byName := map[string]map[string]any{}
			if !trigWaitFor(60*time.Second, func() bool {
				s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(pl["id"])+"/bridges", nil, &bridges)
				for _, b := range bridges {
					byName[b["name"].(string)] = b
				}
				return byName["bad-child"]["status"] == "failed" && byName["child"]["downstream_pipeline"] != nil
			}) {
				t.Fatalf("bridges: %v", bridges)
			}
			if byName["bad-child"]["failure_reason"] != "downstream_pipeline_creation_failed" {
				t.Fatalf("bad child bridge: %v", byName["bad-child"])
			}
			children := s.trigPipelinesOf(id, "source=parent_pipeline&per_page=100")
			if len(children) != 1 {
				t.Fatalf("child pipelines: %v (want only the good one)", children)
			}
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(children[0]["id"])+"/jobs", nil, &jobs)
			if len(jobs) != 1 || jobs[0]["name"] != "deploy-production-xlarge" {
				t.Fatalf("child jobs: %v", fmt.Sprint(jobs))
			}
		})
	}
}

// TestExpandVarsInputs: `$[[ inputs.x | expand_vars ]]` expands the
// project's and the request's variables (not masked ones: GitLab's 400)
// and a config that used them is not reused once a variable changes.
func TestExpandVarsInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			var group, p map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Exp"}, "path": {"exp"}, "namespace_id": {jsonID(group["id"])}}, &p)
			id := jsonID(p["id"])
			for _, v := range []url.Values{
				{"key": {"REGION"}, "value": {"eu"}},
				{"key": {"DEPLOY_KEY"}, "value": {"s3cr3t-value-1234"}, "masked": {"true"}},
			} {
				var out map[string]any
				if code, _ := s.call("POST", "/api/v4/projects/"+id+"/variables", v, &out); code != 201 {
					t.Fatalf("variable %v: %d %v", v, code, out)
				}
			}
			ci := "spec:\n  inputs:\n    where:\n      default: $REGION\n---\n\"deploy-$[[ inputs.where | expand_vars ]]\":\n  script: echo $[[ inputs.where ]]\n"
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci})
			git(t, w, "push", "-q", s.authURL("in/exp"), "main")
			api := s.URL + "/api/v4/projects/" + id
			hdr := map[string]string{"PRIVATE-TOKEN": rootToken}
			dry := func(body string, code int) trigResp {
				return trigDo(t, "POST", api+"/pipeline", "application/json", strings.NewReader(body), hdr).want(t, code, body)
			}
			job := func(r trigResp) string {
				return r.obj["jobs"].([]any)[0].(map[string]any)["name"].(string)
			}
			for _, tc := range []struct{ body, want string }{
				{`{"ref":"main","dry_run":true}`, "deploy-eu"},
				{`{"ref":"main","dry_run":true,"inputs":{"where":"${REGION}-$CI_COMMIT_REF_NAME-$NOPE"}}`, "deploy-eu-main-$NOPE"},
				{`{"ref":"main","dry_run":true,"inputs":{"where":"$ZONE"},"variables":[{"key":"ZONE","value":"z1"}]}`, "deploy-z1"},
			} {
				if got := job(dry(tc.body, 200)); got != tc.want {
					t.Fatalf("%s: job %q, want %q", tc.body, got, tc.want)
				}
			}
			before := len(s.trigPipelinesOf(id, "per_page=100"))
			r := dry(`{"ref":"main","inputs":{"where":"x-$DEPLOY_KEY"}}`, 400)
			if !strings.Contains(r.raw, "error in `expand_vars` function: variable expansion error: masked variables cannot be expanded") || strings.Contains(r.raw, "s3cr3t") {
				t.Fatalf("masked variable: %s", r.raw)
			}
			if n := len(s.trigPipelinesOf(id, "per_page=100")); n != before {
				t.Fatalf("refused expand_vars created a pipeline: %d -> %d", before, n)
			}
			// Same commit, the variable changed: the new value is used.
			var out map[string]any
			if code, _ := s.call("PUT", "/api/v4/projects/"+id+"/variables/REGION", url.Values{"value": {"us"}}, &out); code != 200 {
				t.Fatalf("update variable: %d %v", code, out)
			}
			if got := job(dry(`{"ref":"main","dry_run":true}`, 200)); got != "deploy-us" {
				t.Fatalf("after the variable changed: job %q, want deploy-us", got)
			}
		})
	}
}
