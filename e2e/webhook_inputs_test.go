package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// webhookInputsCI declares typed spec:inputs; the job's name shows the
// values and parallel takes the number as a number.
const webhookInputsCI = `spec:
  inputs:
    pusher:
      regex: ^[A-Za-z]+$
    forced:
      type: boolean
    issues:
      type: number
    commits:
      type: array
    env:
      options: [staging, production]
      default: staging
---
"deploy $[[ inputs.pusher ]] $[[ inputs.env ]] forced=$[[ inputs.forced ]]":
  parallel: $[[ inputs.issues ]]
  script: echo "$[[ inputs.commits ]]"
`

// TestWebhookTriggerInputs: a webhook trigger's mapped inputs reach the
// ref's spec:inputs with their CEL types (string, boolean, number, list)
// from GitHub's documented push payload; an input that breaks the spec
// creates no pipeline and the delivery names the input and the rule. The
// test endpoint previews the jobs (dry_run's shape) and creates nothing.
func TestWebhookTriggerInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebhookTriggerInputs(t, kind) })
	}
}

func testWebhookTriggerInputs(t *testing.T, kind string) {
	f := newHookFixtureCI(t, kind, webhookInputsCI)
	s := f.s
	base := "/api/v4/projects/" + f.projectID + "/webhook_triggers"
	const secret = "inputs-secret"
	body := readPayload(t, "github_push.json")
	sig := "sha256=" + opensslHMAC(t, "sha256", secret, body)
	hdr := func(delivery string) map[string]string {
		return map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig}
	}

	// A map is no input type: refused at save with the field's name.
	var bad map[string]any
	if code, _ := s.call("POST", base, map[string]any{"kind": "github", "secret": secret, "ref": "'master'",
		"inputs": map[string]any{"pusher": "{'a': 1}"}}, &bad); code != 400 || !strings.Contains(jsonString(bad), "inputs.pusher") {
		t.Fatalf("map input: %d %v", code, bad)
	}

	var gh map[string]any
	if code, _ := s.call("POST", base, map[string]any{"description": "typed", "kind": "github", "secret": secret,
		"ref": "payload.repository.default_branch",
		"inputs": map[string]any{"pusher": "payload.pusher.name", "forced": "payload.forced",
			"issues": "payload.repository.open_issues_count", "commits": "payload.commits.map(c, c.id) + [payload.after]"}}, &gh); code != 201 {
		t.Fatalf("create: %d %v", code, gh)
	}
	ghID := jsonID(gh["id"])
	hookURL := gh["url"].(string)

	// Test: the verdict keeps the types; the preview shows the jobs the
	// inputs make (parallel: 2 from a number), the resolved inputs with the
	// default, and variable names; nothing is created or recorded.
	before := f.pipelineCount(t)
	var tst map[string]any
	if code, _ := s.call("POST", base+"/"+ghID+"/test", map[string]any{"headers": hdr("t-1"), "body": string(body)}, &tst); code != 200 || tst["would_create"] != true {
		t.Fatalf("test: %d %v", code, tst)
	}
	vd := tst["verdict"].(map[string]any)
	in := vd["inputs"].(map[string]any)
	if in["pusher"] != "Codertocat" || in["forced"] != false || in["issues"] != float64(2) || jsonString(in["commits"]) != `["0000000000000000000000000000000000000000"]` {
		t.Fatalf("verdict inputs: %v", in)
	}
	pv, _ := tst["preview"].(map[string]any)
	if pv == nil || pv["dry_run"] != true || pv["ref"] != "master" || jsonString(pv["stages"]) != `["test"]` {
		t.Fatalf("preview: %v", tst)
	}
	jobs := pv["jobs"].([]any)
	if len(jobs) != 2 || jobs[0].(map[string]any)["name"] != "deploy Codertocat staging forced=false 1/2" ||
		jobs[0].(map[string]any)["when"] != "on_success" || jobs[0].(map[string]any)["stage"] != "test" {
		t.Fatalf("preview jobs: %v", jobs)
	}
	pin := pv["inputs"].(map[string]any)
	if pin["env"] != "staging" || pin["issues"] != float64(2) || pin["forced"] != false {
		t.Fatalf("preview inputs: %v", pin)
	}
	if names := jsonString(pv["variables"]); !strings.Contains(names, "TRIGGER_PAYLOAD") || strings.Contains(names, "Codertocat") {
		t.Fatalf("preview variables: %s", names)
	}
	var ds []map[string]any
	s.call("GET", base+"/"+ghID+"/deliveries", nil, &ds)
	if n := f.pipelineCount(t); n != before || len(ds) != 0 {
		t.Fatalf("the test created %d pipelines and %d deliveries", n-before, len(ds))
	}

	// The real delivery: a pipeline whose jobs carry the typed inputs.
	r := trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), hdr("in-1"))
	r.want(t, 201, "typed inputs")
	var pjobs []map[string]any
	s.call("GET", "/api/v4/projects/"+f.projectID+"/pipelines/"+jsonID(r.obj["id"])+"/jobs", nil, &pjobs)
	names := []string{}
	for _, j := range pjobs {
		names = append(names, j["name"].(string))
	}
	if strings.Join(names, ",") != "deploy Codertocat staging forced=false 2/2,deploy Codertocat staging forced=false 1/2" &&
		strings.Join(names, ",") != "deploy Codertocat staging forced=false 1/2,deploy Codertocat staging forced=false 2/2" {
		t.Fatalf("jobs: %v", names)
	}
	vars := s.trigPipelineVars(f.projectID, r.obj["id"])
	if _, ok := vars["pusher"]; ok {
		t.Fatalf("inputs passed as variables: %v", vars)
	}

	// Inputs that break the spec: no pipeline, the delivery says which
	// input and which rule, in GitLab's words.
	for i, tc := range []struct {
		inputs map[string]any
		reason string
	}{
		// A number where a string is declared (the CEL type is kept).
		{map[string]any{"pusher": "payload.repository.id", "forced": "false", "issues": "1", "commits": "[]"}, "`pusher` input: provided value is not a string"},
		{map[string]any{"pusher": "payload.pusher.email", "forced": "false", "issues": "1", "commits": "[]"}, "`pusher` input: provided value does not match required RegEx pattern"},
		{map[string]any{"pusher": "'x'", "forced": "payload.ref", "issues": "1", "commits": "[]"}, "`forced` input: provided value is not a boolean"},
		{map[string]any{"pusher": "'x'", "forced": "false", "issues": "1", "commits": "payload.after"}, "`commits` input: provided value is not an array"},
		{map[string]any{"pusher": "'x'", "forced": "false", "issues": "1", "commits": "[]", "env": "'prod'"}, "`env` input: `prod` cannot be used because it is not in the list of allowed options"},
		{map[string]any{"pusher": "'x'", "forced": "false", "commits": "[]"}, "`issues` input: required value has not been provided"},
		{map[string]any{"pusher": "'x'", "forced": "false", "issues": "1", "commits": "[]", "bogus": "1"}, "unknown input arguments: bogus"},
	} {
		if code, _ := s.call("PUT", base+"/"+ghID, map[string]any{"inputs": tc.inputs}, &bad); code != 200 {
			t.Fatalf("update inputs: %d %v", code, bad)
		}
		before := f.pipelineCount(t)
		r := trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), hdr(fmt.Sprintf("bad-%d", i)))
		r.want(t, 400, tc.reason)
		if !strings.Contains(r.raw, tc.reason) {
			t.Fatalf("answer %s, want %q", r.raw, tc.reason)
		}
		if n := f.pipelineCount(t); n != before {
			t.Fatalf("%q created a pipeline", tc.reason)
		}
		s.call("GET", base+"/"+ghID+"/deliveries", nil, &ds)
		if ds[0]["result"] != "refused" || ds[0]["reason"] != "inputs: "+tc.reason || ds[0]["pipeline_id"] != nil {
			t.Fatalf("delivery: %v, want reason %q", ds[0], "inputs: "+tc.reason)
		}
		// The test endpoint says the same without creating anything.
		tst := map[string]any{}
		s.call("POST", base+"/"+ghID+"/test", map[string]any{"headers": hdr("t-2"), "body": string(body)}, &tst)
		if tst["would_create"] != false || tst["reason"] != "inputs: "+tc.reason || tst["preview"] != nil {
			t.Fatalf("test of a bad input: %v", tst)
		}
	}
}

// TestWebhookTriggerGitea drives a gitea-kind trigger with Gitea's
// documented push payload, signed as Gitea signs (X-Gitea-Signature: hex
// HMAC-SHA256 of the body, computed with openssl): good, wrong and missing
// signatures, the mapped ref (develop) and values, and a redelivery (same
// X-Gitea-Delivery) answering with the first pipeline.
func TestWebhookTriggerGitea(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebhookTriggerGitea(t, kind) })
	}
}

func testWebhookTriggerGitea(t *testing.T, kind string) {
	f := newHookFixture(t, kind)
	s := f.s
	// The payload pushes refs/heads/develop: give the project that branch.
	w := newWorkRepo(t, "develop", map[string]string{".gitlab-ci.yml": webhookCI})
	git(t, w, "push", "-q", s.authURL("hooks/app"), "develop")
	base := "/api/v4/projects/" + f.projectID + "/webhook_triggers"
	const secret = "gitea-hook-secret"
	var gt map[string]any
	if code, _ := s.call("POST", base, map[string]any{"description": "gitea pushes", "kind": "gitea", "secret": secret,
		"filter": "headers['x-gitea-event'] == 'push'", "ref": "payload.ref",
		"variables": map[string]any{"PUSHER": "payload.pusher.login", "REPO": "payload.repository.full_name"}}, &gt); code != 201 {
		t.Fatalf("create gitea trigger: %d %v", code, gt)
	}
	u := gt["url"].(string)
	body := readPayload(t, "gitea_push.json")
	const delivery = "f6266f16-1bf3-46a5-9ea4-602e06ead473"
	sig := opensslHMAC(t, "sha256", secret, body)
	hdr := func(sig string) map[string]string {
		h := map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery, "X-GitHub-Event": "push", "X-Gogs-Event": "push"}
		if sig != "" {
			h["X-Gitea-Signature"] = sig
		}
		return h
	}
	before := f.pipelineCount(t)
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), hdr(opensslHMAC(t, "sha256", "another-secret", body))).want(t, 401, "wrong signature")
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), hdr("")).want(t, 401, "missing signature")
	// GitHub's prefixed form is not Gitea's.
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), hdr("sha256="+sig)).want(t, 401, "prefixed signature")
	if n := f.pipelineCount(t); n != before {
		t.Fatalf("refused deliveries created pipelines")
	}

	r := trigDo(t, "POST", u, "application/json", bytes.NewReader(body), hdr(sig))
	r.want(t, 201, "signed gitea push")
	first := jsonID(r.obj["id"])
	if r.obj["ref"] != "develop" || r.obj["source"] != "trigger" {
		t.Fatalf("pipeline: %v", r.obj)
	}
	vars := s.trigPipelineVars(f.projectID, first)
	if vars["PUSHER"][0] != "gitea" || vars["REPO"][0] != "gitea/webhooks" {
		t.Fatalf("mapped variables: %v", vars)
	}
	r = trigDo(t, "POST", u, "application/json", bytes.NewReader(body), hdr(sig))
	r.want(t, 200, "gitea redelivery")
	if jsonID(r.obj["id"]) != first || r.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("redelivery: %v %v", r.hdr, r.obj)
	}
	if n := f.pipelineCount(t); n != before+1 {
		t.Fatalf("pipelines: %d, want %d", n, before+1)
	}
	var ds []map[string]any
	s.call("GET", base+"/"+jsonID(gt["id"])+"/deliveries", nil, &ds)
	results := []string{}
	for _, d := range ds {
		results = append(results, d["result"].(string)+":"+d["delivery_id"].(string))
	}
	want := "duplicate:" + delivery + ",created:" + delivery + ",unauthorized:" + delivery + ",unauthorized:" + delivery + ",unauthorized:" + delivery
	if strings.Join(results, ",") != want {
		t.Fatalf("deliveries: %v, want %s", results, want)
	}
	if !strings.Contains(ds[2]["reason"].(string), "X-Gitea-Signature is not hexadecimal") ||
		!strings.Contains(ds[3]["reason"].(string), "X-Gitea-Signature missing") || !strings.Contains(ds[4]["reason"].(string), "X-Gitea-Signature does not match") {
		t.Fatalf("reasons: %v / %v / %v", ds[2]["reason"], ds[3]["reason"], ds[4]["reason"])
	}
	var one map[string]any
	s.call("GET", base+"/"+jsonID(gt["id"])+"/deliveries/"+jsonID(ds[1]["id"]), nil, &one)
	if h := one["headers"].(map[string]any); h["X-Gitea-Signature"] != "[REDACTED]" || strings.Contains(jsonString(one), sig) {
		t.Fatalf("stored headers: %v", h)
	}
}
