package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// trigDeliveryReasons is every reason in a project's deliveries log.
func (f *trigFixture) deliveryReasons() string {
	var dl []map[string]any
	f.s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=100", nil, &dl)
	out := ""
	for _, d := range dl {
		out += fmt.Sprint(d["reason"]) + "\n"
	}
	return out
}

// made counts the project's pipelines made by trigger calls and the API
// (push pipelines of the fixture may still be arriving: not counted).
func (f *trigFixture) made() int {
	return len(f.s.trigPipelinesOf(f.appID, "per_page=100&source=trigger")) + len(f.s.trigPipelinesOf(f.appID, "per_page=100&source=api"))
}

// TestTriggerTokenVariablesPolicy: a token with variables_allowed=false
// may set no variables (TRIGGER_PAYLOAD is exempt: a call without
// variables still runs), and one with allowed_variables only those names.
// Refusals are GitLab's 400 {"message":{"base":[...]}}, create nothing and
// land in the deliveries log with the reason; rotation keeps the policy.
func TestTriggerTokenVariablesPolicy(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			for _, bad := range []map[string]any{
				{"description": "x", "allowed_variables": []string{"bad-name"}},
				{"description": "x", "variables_allowed": "perhaps"},
				{"description": "x", "rate_limit": "-1"},
				{"description": "x", "rate_limit": "many"},
			} {
				if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", bad, nil); code != 400 {
					t.Fatalf("create with %v: %d, want 400", bad, code)
				}
			}
			var tr map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", map[string]any{"description": "no vars", "variables_allowed": false}, &tr); code != 201 {
				t.Fatalf("create: %d %v", code, tr)
			}
			if tr["variables_allowed"] != false || fmt.Sprint(tr["allowed_variables"]) != "[]" {
				t.Fatalf("policy fields: %v", tr)
			}
			tok, tid := tr["token"].(string), jsonID(tr["id"])
			before := f.made()
			r := trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main", "variables[DEPLOY_ENV]", "prod").want(t, 400, "variables from a no-variables token")
			if strings.TrimSpace(r.raw) != `{"message":{"base":["Insufficient permissions to set pipeline variables"]}}` {
				t.Fatalf("400 body: %s", r.raw)
			}
			if n := f.made(); n != before {
				t.Fatalf("refused call created a pipeline")
			}
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 201, "no variables (TRIGGER_PAYLOAD exempt)")
			before = f.made()
			if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+tid, map[string]any{"variables_allowed": true, "allowed_variables": []string{"DEPLOY_ENV"}}, &tr); code != 200 ||
				tr["variables_allowed"] != true || fmt.Sprint(tr["allowed_variables"]) != "[DEPLOY_ENV]" {
				t.Fatalf("PUT: %d %v", code, tr)
			}
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main", "variables[DEPLOY_ENV]", "prod", "variables[EXTRA]", "1").want(t, 400, "a name outside allowed_variables")
			if n := f.made(); n != before {
				t.Fatalf("refused call created a pipeline")
			}
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main", "variables[DEPLOY_ENV]", "prod").want(t, 201, "an allowed name")
			reasons := f.deliveryReasons()
			for _, want := range []string{
				"token policy: this token may not set variables (sent DEPLOY_ENV)",
				"token policy: variables EXTRA are not among the allowed variables DEPLOY_ENV",
			} {
				if !strings.Contains(reasons, want) {
					t.Fatalf("deliveries lack %q:\n%s", want, reasons)
				}
			}
			var nt map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers/"+tid+"/rotate", url.Values{"overlap": {"0"}}, &nt); code != 201 || fmt.Sprint(nt["allowed_variables"]) != "[DEPLOY_ENV]" {
				t.Fatalf("rotate lost the policy: %d %v", code, nt)
			}
			trigForm(t, api+"/trigger/pipeline", "token", nt["token"].(string), "ref", "main", "variables[EXTRA]", "1").want(t, 400, "rotated token keeps allowed_variables")
		})
	}
}

// TestTriggerTokenRateLimit: a token's rate_limit refuses calls beyond it
// per minute with 429 and Retry-After, creates nothing, logs the reason,
// and leaves the project's other tokens alone.
func TestTriggerTokenRateLimit(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			var tr map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", map[string]any{"description": "slow", "rate_limit": 2}, &tr); code != 201 || jsonID(tr["rate_limit"]) != "2" {
				t.Fatalf("create: %d %v", code, tr)
			}
			tok := tr["token"].(string)
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 201, "first call")
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 201, "second call")
			before := f.made()
			r := trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 429, "third call in the minute")
			if r.obj["message"] != "429 Too Many Requests - this trigger token is limited to 2 requests per minute, retry later" {
				t.Fatalf("429 body: %s", r.raw)
			}
			if ra, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Fatalf("Retry-After: %q", r.hdr.Get("Retry-After"))
			}
			if n := f.made(); n != before {
				t.Fatalf("rate-limited call created a pipeline")
			}
			if reasons := f.deliveryReasons(); !strings.Contains(reasons, "token rate limit: more than 2 requests per minute") {
				t.Fatalf("deliveries lack the rate limit reason:\n%s", reasons)
			}
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main").want(t, 201, "another token of the project")
		})
	}
}

// TestPipelineVariablesMinimumRole: the project's
// ci_pipeline_variables_minimum_override_role refuses variables from
// callers below it on the trigger API (the token owner's current role) and
// on POST /pipeline, with GitLab's 400, nothing created and, for
// triggers, the reason in the deliveries log; calls without variables
// still run (TRIGGER_PAYLOAD is exempt).
func TestPipelineVariablesMinimumRole(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			var p map[string]any
			if s.call("GET", "/api/v4/projects/"+f.appID, nil, &p); p["ci_pipeline_variables_minimum_override_role"] != "developer" {
				t.Fatalf("default role: %v", p["ci_pipeline_variables_minimum_override_role"])
			}
			if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID, url.Values{"ci_pipeline_variables_minimum_override_role": {"guest"}}, nil); code != 400 {
				t.Fatalf("invalid role: %d, want 400", code)
			}
			if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID, url.Values{"ci_pipeline_variables_minimum_override_role": {"no_one_allowed"}}, &p); code != 200 ||
				p["ci_pipeline_variables_minimum_override_role"] != "no_one_allowed" {
				t.Fatalf("set role: %d %v", code, p["ci_pipeline_variables_minimum_override_role"])
			}
			before := f.made()
			r := trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "variables[DEPLOY_ENV]", "prod").want(t, 400, "trigger with variables, no_one_allowed")
			if strings.TrimSpace(r.raw) != `{"message":{"base":["Insufficient permissions to set pipeline variables"]}}` {
				t.Fatalf("400 body: %s", r.raw)
			}
			var out map[string]any
			code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main", "variables": []map[string]string{{"key": "A", "value": "1"}}}, &out)
			if code != 400 || fmt.Sprint(out["message"]) != "map[base:[Insufficient permissions to set pipeline variables]]" {
				t.Fatalf("POST /pipeline with variables: %d %v", code, out)
			}
			if n := f.made(); n != before {
				t.Fatalf("refused calls created pipelines")
			}
			if reasons := f.deliveryReasons(); !strings.Contains(reasons, "project policy: the minimum role to use pipeline variables is no_one_allowed (sent DEPLOY_ENV)") {
				t.Fatalf("deliveries lack the reason:\n%s", reasons)
			}
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main").want(t, 201, "trigger without variables")
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main"}, nil); code != 201 {
				t.Fatalf("POST /pipeline without variables: %d", code)
			}
			s.call("PUT", "/api/v4/projects/"+f.appID, url.Values{"ci_pipeline_variables_minimum_override_role": {"maintainer"}}, nil)
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "variables[DEPLOY_ENV]", "prod").want(t, 201, "owner above maintainer")
		})
	}
}

// TestTriggersCLI: kiln triggers create sets a token's policy and prints
// the token once; kiln triggers rotate issues a new one with the same
// policy; kiln triggers update changes only what it is given; refusals
// exit 3 and create or change nothing.
func TestTriggersCLI(t *testing.T) {
	f := newTrigFixture(t, "sqlite")
	s := f.s
	api := s.URL + "/api/v4/projects/" + f.appID
	run := func(args ...string) (int, string) {
		cmd := exec.Command(kilnBin, append(args, "--url", s.URL, "--project", "grp/app", "--private-token", rootToken)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("kiln %v: %v", args, err)
		}
		return code, string(out)
	}
	code, out := run("triggers", "create", "--description", "cli bot", "--allowed-ref", "release-*", "--allowed-variable", "DEPLOY_ENV", "--rate-limit", "5")
	var tr map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &tr) != nil {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	tok := fmt.Sprint(tr["token"])
	if !strings.HasPrefix(tok, "glptt-") || fmt.Sprint(tr["allowed_refs"]) != "[release-*]" || fmt.Sprint(tr["allowed_variables"]) != "[DEPLOY_ENV]" || jsonID(tr["rate_limit"]) != "5" {
		t.Fatalf("created: %v", tr)
	}
	trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 403, "CLI-set allowed_refs")
	if code, out := run("triggers", "create", "--description", "x", "--allowed-cidr", "not-a-net"); code != 3 || !strings.Contains(out, "allowed_cidrs") {
		t.Fatalf("bad network: exit %d: %s", code, out)
	}
	if code, _ := run("triggers", "create"); code != 2 {
		t.Fatalf("missing description: exit %d", code)
	}
	var list []map[string]any
	if s.call("GET", "/api/v4/projects/"+f.appID+"/triggers", nil, &list); len(list) != 2 {
		t.Fatalf("tokens after a refused create: %d", len(list))
	}
	code, out = run("triggers", "rotate", "--id", jsonID(tr["id"]), "--overlap", "0s")
	var nt map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &nt) != nil || fmt.Sprint(nt["allowed_refs"]) != "[release-*]" || fmt.Sprint(nt["token"]) == tok {
		t.Fatalf("rotate: exit %d: %s", code, out)
	}
	trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "release-1.2").want(t, 404, "old token after overlap 0")
	trigForm(t, api+"/trigger/pipeline", "token", fmt.Sprint(nt["token"]), "ref", "release-1.2").want(t, 201, "rotated token")

	// update: only the flags given change; a refusal exits 3 and changes
	// nothing; --allowed-ref "" lifts the restriction.
	nid := jsonID(nt["id"])
	code, out = run("triggers", "update", "--id", nid, "--allowed-ref", "hotfix-*", "--description", "cli bot v2")
	var ut map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ut) != nil || fmt.Sprint(ut["allowed_refs"]) != "[hotfix-*]" || ut["description"] != "cli bot v2" ||
		fmt.Sprint(ut["allowed_variables"]) != "[DEPLOY_ENV]" || jsonID(ut["rate_limit"]) != "5" {
		t.Fatalf("update: exit %d: %s", code, out)
	}
	trigForm(t, api+"/trigger/pipeline", "token", fmt.Sprint(nt["token"]), "ref", "release-1.2").want(t, 403, "ref refused after the CLI update")
	if code, out := run("triggers", "update", "--id", nid, "--description", "x", "--rate-limit", "-1"); code != 3 || !strings.Contains(out, "rate_limit") {
		t.Fatalf("bad rate: exit %d: %s", code, out)
	}
	if code, _ := run("triggers", "update", "--id", nid); code != 2 {
		t.Fatalf("nothing to change: exit %d", code)
	}
	code, out = run("triggers", "update", "--id", nid, "--allowed-ref", "")
	if code != 0 || json.Unmarshal([]byte(out), &ut) != nil || fmt.Sprint(ut["allowed_refs"]) != "[]" || ut["description"] != "cli bot v2" {
		t.Fatalf("lift allowed refs: exit %d: %s", code, out)
	}
	trigForm(t, api+"/trigger/pipeline", "token", fmt.Sprint(nt["token"]), "ref", "main").want(t, 201, "any ref after lifting")
}
