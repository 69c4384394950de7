package e2e

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// webhookCI runs one job on every trigger pipeline; its variables are
// checked through the pipeline variables API.
const webhookCI = `job:
  script: echo "$PUSHER"
`

// opensslHMAC signs body with secret using the openssl CLI (a real HMAC
// computed outside Kiln's code).
func opensslHMAC(t *testing.T, alg, secret string, body []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "dgst", "-"+alg, "-hmac", secret, "-hex")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	s := strings.TrimSpace(string(out))
	return s[strings.LastIndex(s, " ")+1:]
}

func readPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/webhooks/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hookFixture struct {
	s         *server
	projectID string
}

func newHookFixture(t *testing.T, kind string) *hookFixture {
	return newHookFixtureCI(t, kind, webhookCI)
}

// newHookFixtureCI is newHookFixture with another .gitlab-ci.yml.
func newHookFixtureCI(t *testing.T, kind, ci string) *hookFixture {
	s := newServer(t, kind)
	s.start()
	var group, proj map[string]any
	if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Hooks", "path": "hooks"}, &group); code != 201 {
		t.Fatalf("create group: %d %v", code, group)
	}
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	w := newWorkRepo(t, "master", map[string]string{".gitlab-ci.yml": ci})
	git(t, w, "tag", "v1.0.0")
	git(t, w, "push", "-q", s.authURL("hooks/app"), "master", "v1.0.0")
	return &hookFixture{s: s, projectID: jsonID(proj["id"])}
}

func (f *hookFixture) pipelineCount(t *testing.T) int {
	return len(f.s.trigPipelinesOf(f.projectID, "source=trigger&per_page=100"))
}

// TestWebhookTriggers drives GitHub and GitLab webhook triggers with the
// documented example payloads, signed with openssl.
func TestWebhookTriggers(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebhookTriggers(t, kind) })
	}
}

func testWebhookTriggers(t *testing.T, kind string) {
	f := newHookFixture(t, kind)
	s := f.s
	base := "/api/v4/projects/" + f.projectID + "/webhook_triggers"

	// Expressions that do not compile are refused at save with a position.
	var bad map[string]any
	code, _ := s.call("POST", base, map[string]any{"description": "x", "kind": "github", "secret": "s",
		"ref": "payload.repository.default_branch", "filter": "payload.deleted == "}, &bad)
	if code != 400 {
		t.Fatalf("bad filter: %d %v", code, bad)
	}
	msg, _ := bad["message"].(map[string]any)
	pos, _ := msg["position"].(map[string]any)
	if msg["filter"] == nil || pos["field"] != "filter" || pos["line"] != float64(1) || pos["column"] != float64(20) {
		t.Fatalf("bad filter: want message.filter and position line 1 column 20 (just past the end), got %v", bad)
	}
	code, _ = s.call("POST", base, map[string]any{"kind": "github", "secret": "s", "ref": "1 + 2"}, &bad)
	if code != 400 || !strings.Contains(jsonString(bad), "must be a string") {
		t.Fatalf("ref of type int: %d %v", code, bad)
	}
	code, _ = s.call("POST", base, map[string]any{"kind": "github", "secret": "s", "ref": "'master'",
		"variables": map[string]any{"X": "payload.nope("}}, &bad)
	if code != 400 || !strings.Contains(jsonString(bad), "variables.X") {
		t.Fatalf("bad variable expression: %d %v", code, bad)
	}
	var list []map[string]any
	s.call("GET", base, nil, &list)
	if len(list) != 0 {
		t.Fatalf("refused saves created triggers: %v", list)
	}

	// GitHub: push events only; ref, variables and inputs mapped.
	const ghSecret = "It's a Secret to Everybody"
	var gh map[string]any
	code, _ = s.call("POST", base, map[string]any{"description": "github pushes", "kind": "github", "secret": ghSecret,
		"filter": "headers['x-github-event'] == 'push'", "ref": "payload.repository.default_branch",
		"variables": map[string]any{"PUSHER": "payload.pusher.name", "BEFORE": "payload.before",
			"DELETED_REF": "payload.deleted ? payload.ref : ''"}}, &gh)
	if code != 201 {
		t.Fatalf("create github trigger: %d %v", code, gh)
	}
	if _, ok := gh["secret"]; ok {
		t.Fatalf("the secret is readable: %v", gh)
	}
	hookURL, _ := gh["url"].(string)
	if !strings.HasPrefix(hookURL, s.URL+"/api/v4/webhooks/") || len(hookURL)-len(s.URL+"/api/v4/webhooks/") != 40 {
		t.Fatalf("url: %q", hookURL)
	}
	ghID := jsonID(gh["id"])
	body := readPayload(t, "github_push.json")
	sig := "sha256=" + opensslHMAC(t, "sha256", ghSecret, body)
	ghHeaders := func(delivery, event, sig string) map[string]string {
		h := map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "User-Agent": "GitHub-Hookshot/044aadd"}
		if sig != "" {
			h["X-Hub-Signature-256"] = sig
		}
		return h
	}

	before := f.pipelineCount(t)
	// Bad and missing signatures: 401, no pipeline, a delivery saying why.
	r := trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("d-bad", "push", "sha256="+strings.Repeat("0", 64)))
	r.want(t, 401, "wrong signature")
	r = trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("d-none", "push", ""))
	r.want(t, 401, "missing signature")
	// A signature over another body.
	r = trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(append(body, ' ')), ghHeaders("d-other", "push", sig))
	r.want(t, 401, "signature of another body")
	if n := f.pipelineCount(t); n != before {
		t.Fatalf("unsigned requests created pipelines: %d -> %d", before, n)
	}
	// An unknown trigger id: 404.
	trigDo(t, "POST", s.URL+"/api/v4/webhooks/"+strings.Repeat("a", 40), "application/json", bytes.NewReader(body), ghHeaders("x", "push", sig)).
		want(t, 404, "unknown webhook id")

	// Filter false (a ping event): no pipeline, a delivery saying why.
	r = trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("d-ping", "ping", sig))
	r.want(t, 200, "filtered")
	if !strings.Contains(r.raw, "filter: false") {
		t.Fatalf("filtered answer: %s", r.raw)
	}
	if n := f.pipelineCount(t); n != before {
		t.Fatalf("a filtered request created a pipeline")
	}

	// Good signature: a pipeline on the mapped ref with the mapped values.
	r = trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", sig))
	r.want(t, 201, "signed push")
	first := jsonID(r.obj["id"])
	if r.obj["ref"] != "master" || r.obj["source"] != "trigger" {
		t.Fatalf("pipeline: %v", r.obj)
	}
	vars := s.trigPipelineVars(f.projectID, first)
	if vars["PUSHER"][0] != "Codertocat" || vars["BEFORE"][0] != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" || vars["DELETED_REF"][0] != "refs/tags/simple-tag" {
		t.Fatalf("mapped variables: %v", vars)
	}
	if vars["TRIGGER_PAYLOAD"][1] != "file" {
		t.Fatalf("TRIGGER_PAYLOAD: %v", vars["TRIGGER_PAYLOAD"])
	}

	// A redelivery (same X-GitHub-Delivery) answers with the same pipeline.
	r = trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push", sig))
	r.want(t, 200, "redelivery")
	if jsonID(r.obj["id"]) != first || r.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("redelivery: %v %v", r.hdr, r.obj)
	}
	if n := f.pipelineCount(t); n != before+1 {
		t.Fatalf("pipelines: %d, want %d", n, before+1)
	}

	// Deliveries: newest first, with verdicts, redacted headers.
	var ds []map[string]any
	s.call("GET", base+"/"+ghID+"/deliveries", nil, &ds)
	results := []string{}
	for _, d := range ds {
		results = append(results, d["result"].(string))
	}
	if strings.Join(results, ",") != "duplicate,created,filtered,unauthorized,unauthorized,unauthorized" {
		t.Fatalf("delivery results: %v", results)
	}
	if !strings.Contains(ds[2]["reason"].(string), "filter: false") || !strings.Contains(ds[5]["reason"].(string), "does not match") ||
		!strings.Contains(ds[4]["reason"].(string), "missing") {
		t.Fatalf("delivery reasons: %v", ds)
	}
	createdID := jsonID(ds[1]["id"])
	if jsonID(ds[1]["pipeline_id"]) != first || jsonID(ds[0]["pipeline_id"]) != first {
		t.Fatalf("delivery pipelines: %v", ds[:2])
	}
	var one map[string]any
	s.call("GET", base+"/"+ghID+"/deliveries/"+createdID, nil, &one)
	hdrs, _ := one["headers"].(map[string]any)
	if hdrs["X-Hub-Signature-256"] != "[REDACTED]" || hdrs["X-Github-Delivery"] != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || one["body"] != string(body) {
		t.Fatalf("stored request: %v", one)
	}
	if strings.Contains(jsonString(one), ghSecret) {
		t.Fatalf("the secret is stored in a delivery")
	}

	// Replay: a new pipeline, recorded as a new delivery linked to the first.
	var rep map[string]any
	if code, _ := s.call("POST", base+"/"+ghID+"/deliveries/"+createdID+"/replay", nil, &rep); code != 201 {
		t.Fatalf("replay: %d %v", code, rep)
	}
	if rep["result"] != "created" || jsonID(rep["replay_of"]) != createdID || rep["pipeline_id"] == nil || jsonID(rep["pipeline_id"]) == first {
		t.Fatalf("replay: %v", rep)
	}
	if n := f.pipelineCount(t); n != before+2 {
		t.Fatalf("pipelines after replay: %d, want %d", n, before+2)
	}

	// Test: a sample in, the verdict out, nothing created or recorded.
	var tst map[string]any
	code, _ = s.call("POST", base+"/"+ghID+"/test", map[string]any{"headers": ghHeaders("t-1", "push", sig), "body": string(body)}, &tst)
	if code != 200 || tst["would_create"] != true || tst["signature"] != "valid" {
		t.Fatalf("test: %d %v", code, tst)
	}
	verdict, _ := tst["verdict"].(map[string]any)
	if verdict["ref"] != "master" {
		t.Fatalf("test verdict: %v", tst)
	}
	code, _ = s.call("POST", base+"/"+ghID+"/test", map[string]any{"headers": map[string]any{"X-GitHub-Event": "ping"}, "payload": map[string]any{"zen": "x"}}, &tst)
	if code != 200 || tst["would_create"] != false {
		t.Fatalf("test ping: %d %v", code, tst)
	}
	s.call("GET", base+"/"+ghID+"/deliveries", nil, &ds)
	if n := f.pipelineCount(t); n != before+2 || len(ds) != 7 {
		t.Fatalf("test created something: %d pipelines, %d deliveries", n, len(ds))
	}

	// GitLab: X-Gitlab-Token; push and tag push events on their refs.
	var gl map[string]any
	code, _ = s.call("POST", base, map[string]any{"description": "gitlab", "kind": "gitlab", "secret": "gl-secret-token",
		"filter": "payload.object_kind in ['push', 'tag_push']", "ref": "payload.ref",
		"variables": map[string]any{"PUSHER": "payload.user_name", "EVENT": "headers['x-gitlab-event']"}}, &gl)
	if code != 201 {
		t.Fatalf("create gitlab trigger: %d %v", code, gl)
	}
	glURL := gl["url"].(string)
	push := readPayload(t, "gitlab_push.json")
	trigDo(t, "POST", glURL, "application/json", bytes.NewReader(push), map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}).
		want(t, 401, "gitlab wrong token")
	trigDo(t, "POST", glURL, "application/json", bytes.NewReader(push), map[string]string{"X-Gitlab-Event": "Push Hook"}).
		want(t, 401, "gitlab no token")
	r = trigDo(t, "POST", glURL, "application/json", bytes.NewReader(push), map[string]string{"X-Gitlab-Event": "Push Hook",
		"X-Gitlab-Token": "gl-secret-token", "X-Gitlab-Event-UUID": "13792a32-8f4c-4ee2-a3b1-4d4e4c5c4f25"})
	r.want(t, 201, "gitlab push")
	glFirst := jsonID(r.obj["id"])
	if r.obj["ref"] != "master" {
		t.Fatalf("gitlab push pipeline: %v", r.obj)
	}
	vars = s.trigPipelineVars(f.projectID, glFirst)
	if vars["PUSHER"][0] != "John Smith" || vars["EVENT"][0] != "Push Hook" {
		t.Fatalf("gitlab push variables: %v", vars)
	}
	r = trigDo(t, "POST", glURL, "application/json", bytes.NewReader(push), map[string]string{"X-Gitlab-Event": "Push Hook",
		"X-Gitlab-Token": "gl-secret-token", "X-Gitlab-Event-UUID": "13792a32-8f4c-4ee2-a3b1-4d4e4c5c4f25"})
	r.want(t, 200, "gitlab redelivery")
	if jsonID(r.obj["id"]) != glFirst {
		t.Fatalf("gitlab redelivery made pipeline %v, want %s", r.obj["id"], glFirst)
	}
	tag := readPayload(t, "gitlab_tag_push.json")
	r = trigDo(t, "POST", glURL, "application/json", bytes.NewReader(tag), map[string]string{"X-Gitlab-Event": "Tag Push Hook",
		"X-Gitlab-Token": "gl-secret-token", "X-Gitlab-Event-UUID": "7b9a1c6e-2d1e-4a8f-9d55-0c2b1d3e4f50"})
	r.want(t, 201, "gitlab tag push")
	if r.obj["ref"] != "v1.0.0" || r.obj["tag"] != true {
		t.Fatalf("gitlab tag push pipeline: %v", r.obj)
	}

	// Unsigned requests are no write channel: records are bounded per
	// trigger (10 at once), and none keeps the body.
	for i := 0; i < 12; i++ {
		trigDo(t, "POST", glURL, "application/json", bytes.NewReader(push), map[string]string{"X-Gitlab-Token": "guess"}).want(t, 401, "flood")
	}
	var glDs []map[string]any
	s.call("GET", base+"/"+jsonID(gl["id"])+"/deliveries?per_page=100", nil, &glDs)
	unauth := 0
	for _, d := range glDs {
		if d["result"] == "unauthorized" {
			unauth++
			var full map[string]any
			s.call("GET", base+"/"+jsonID(gl["id"])+"/deliveries/"+jsonID(d["id"]), nil, &full)
			if full["body"] != "" {
				t.Fatalf("an unauthenticated delivery kept its body: %v", full)
			}
		}
	}
	if unauth == 0 || unauth > 10 {
		t.Fatalf("14 unsigned requests wrote %d delivery records, want 1..10", unauth)
	}

	// Only maintainers manage webhook triggers.
	var dev map[string]any
	s.call("POST", "/api/v4/users", map[string]any{"username": "dev", "name": "Dev", "email": "dev@example.com", "password": "devpassword1"}, &dev)
	s.call("POST", "/api/v4/projects/"+f.projectID+"/members", map[string]any{"user_id": dev["id"], "access_level": 30}, nil)
	var pat map[string]any
	s.call("POST", "/api/v4/users/"+jsonID(dev["id"])+"/personal_access_tokens", map[string]any{"name": "t", "scopes": []string{"api"}}, &pat)
	devToken, _ := pat["token"].(string)
	if devToken == "" {
		t.Fatalf("developer token: %v", pat)
	}
	if code, _ := s.callAs(devToken, "GET", base, nil, nil); code != 403 {
		t.Fatalf("developer lists webhook triggers: %d", code)
	}
	if code, _ := s.callAs(devToken, "POST", base+"/"+ghID+"/deliveries/"+createdID+"/replay", nil, nil); code != 403 {
		t.Fatalf("developer replays: %d", code)
	}

	// Delete: the URL is gone.
	if code, _ := s.call("DELETE", base+"/"+ghID, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), ghHeaders("d-after", "push", sig)).want(t, 404, "deleted trigger")
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWebhookTriggerPolicy: a generic sender's chosen algorithm and header,
// allowed_cidrs, and the owner's access now (a maintainer demoted to
// developer can no longer run the default branch, which is protected). On
// SQLite and PostgreSQL.
func TestWebhookTriggerPolicy(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebhookTriggerPolicy(t, kind) })
	}
}

func testWebhookTriggerPolicy(t *testing.T, kind string) {
	f := newHookFixture(t, kind)
	s := f.s
	base := "/api/v4/projects/" + f.projectID + "/webhook_triggers"
	body := []byte(`{"event":"image.pushed","repository":"registry.example.com/app","tag":"v1.4.2"}`)

	var gen map[string]any
	code, _ := s.call("POST", base, map[string]any{"kind": "generic", "secret": "gen-secret", "signature_header": "X-Registry-Signature",
		"signature_algorithm": "sha512", "filter": "payload.event == 'image.pushed' && payload.tag.matches('^v[0-9]+')",
		"ref": "'master'", "variables": map[string]any{"IMAGE": "payload.repository + ':' + payload.tag"}}, &gen)
	if code != 201 {
		t.Fatalf("create generic: %d %v", code, gen)
	}
	u := gen["url"].(string)
	sha256sig := "sha256=" + opensslHMAC(t, "sha256", "gen-secret", body)
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), map[string]string{"X-Registry-Signature": sha256sig}).want(t, 401, "wrong algorithm")
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), map[string]string{"X-Signature": "sha512=" + opensslHMAC(t, "sha512", "gen-secret", body)}).
		want(t, 401, "default header instead of the chosen one")
	r := trigDo(t, "POST", u, "application/json", bytes.NewReader(body), map[string]string{"X-Registry-Signature": "sha512=" + opensslHMAC(t, "sha512", "gen-secret", body)})
	r.want(t, 201, "generic sha512")
	if v := s.trigPipelineVars(f.projectID, r.obj["id"]); v["IMAGE"][0] != "registry.example.com/app:v1.4.2" {
		t.Fatalf("IMAGE: %v", v)
	}

	// allowed_cidrs: loopback is not in 10.0.0.0/8.
	if code, _ := s.call("PUT", base+"/"+jsonID(gen["id"]), map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}, nil); code != 200 {
		t.Fatalf("set allowed_cidrs: %d", code)
	}
	trigDo(t, "POST", u, "application/json", bytes.NewReader(body), map[string]string{"X-Registry-Signature": "sha512=" + opensslHMAC(t, "sha512", "gen-secret", body)}).
		want(t, 403, "address not allowed")
	var ds []map[string]any
	s.call("GET", base+"/"+jsonID(gen["id"])+"/deliveries", nil, &ds)
	if ds[0]["result"] != "unauthorized" || !strings.Contains(ds[0]["reason"].(string), "allowed_cidrs") {
		t.Fatalf("cidr delivery: %v", ds[0])
	}
	if code, _ := s.call("PUT", base+"/"+jsonID(gen["id"]), map[string]any{"allowed_cidrs": []string{"127.0.0.0/8", "::1"}}, nil); code != 200 {
		t.Fatalf("set allowed_cidrs: %d", code)
	}
	var bad map[string]any
	if code, _ := s.call("PUT", base+"/"+jsonID(gen["id"]), map[string]any{"allowed_cidrs": []string{"10.0.0.0/33"}}, &bad); code != 400 {
		t.Fatalf("bad cidr: %d %v", code, bad)
	}

	// A maintainer's trigger, then the maintainer demoted to developer:
	// the protected default branch is refused, with the reason logged.
	var m map[string]any
	s.call("POST", "/api/v4/users", map[string]any{"username": "maint", "name": "M", "email": "m@example.com", "password": "maintpassword1"}, &m)
	s.call("POST", "/api/v4/projects/"+f.projectID+"/members", map[string]any{"user_id": m["id"], "access_level": 40}, nil)
	var pat map[string]any
	s.call("POST", "/api/v4/users/"+jsonID(m["id"])+"/personal_access_tokens", map[string]any{"name": "t", "scopes": []string{"api"}}, &pat)
	mt := pat["token"].(string)
	var mine map[string]any
	if code, _ := s.callAs(mt, "POST", base, map[string]any{"kind": "gitlab", "secret": "m-token", "ref": "'master'"}, &mine); code != 201 {
		t.Fatalf("maintainer creates: %d %v", code, mine)
	}
	mu := mine["url"].(string)
	trigDo(t, "POST", mu, "application/json", strings.NewReader(`{}`), map[string]string{"X-Gitlab-Token": "m-token"}).want(t, 201, "maintainer's trigger")
	if code, _ := s.call("PUT", "/api/v4/projects/"+f.projectID+"/members/"+jsonID(m["id"]), map[string]any{"access_level": 30}, nil); code != 200 {
		t.Fatalf("demote: %d", code)
	}
	before := f.pipelineCount(t)
	r = trigDo(t, "POST", mu, "application/json", strings.NewReader(`{}`), map[string]string{"X-Gitlab-Token": "m-token"})
	r.want(t, 400, "demoted owner on a protected ref")
	if f.pipelineCount(t) != before {
		t.Fatalf("a demoted owner's trigger created a pipeline")
	}
	s.call("GET", base+"/"+jsonID(mine["id"])+"/deliveries", nil, &ds)
	if ds[0]["result"] != "refused" || !strings.Contains(ds[0]["reason"].(string), "protected") {
		t.Fatalf("demoted delivery: %v", ds[0])
	}
}
