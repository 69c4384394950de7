package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

const trigAppCI = `stages: [build, test, deploy]
build:
  stage: build
  script: echo build
payload:
  stage: test
  rules:
    - if: $CI_PIPELINE_SOURCE == "trigger"
  script:
    - test -f "$TRIGGER_PAYLOAD"
    - grep -q '"ref":"main"' "$TRIGGER_PAYLOAD"
upload:
  stage: deploy
  rules:
    - if: $UPLOAD_TO_S3 == "true"
  script: test "$UPLOAD_TO_S3" = "true"
fail:
  stage: test
  rules:
    - if: $MAKE_IT_FAIL == "yes"
  script: exit 1
child:
  stage: deploy
  needs: []
  rules:
    - if: $CHILD == "yes"
  trigger:
    include: child.yml
    strategy: depend
    forward:
      pipeline_variables: true
deploy-downstream:
  stage: deploy
  needs: []
  rules:
    - if: $CI_COMMIT_TAG
  variables:
    DEPLOY_ENV: production
  trigger:
    project: grp/deployer
    branch: main
notify:
  stage: deploy
  needs: []
  rules:
    - if: $CI_COMMIT_TAG
  script:
    - curl -sf -X POST -F token=$CI_JOB_TOKEN -F ref=main "$CI_API_V4_URL/projects/grp%2Fdeployer/trigger/pipeline"
`

const trigChildCI = `child-job:
  script: echo child
child-fail:
  rules:
    - if: $CHILD_FAIL == "yes"
  script: exit 1
`

const trigDeployerCI = `deploy:
  script: echo "deploying from $CI_PIPELINE_SOURCE"
`

// trigFixture is a server with two projects, grp/app and grp/deployer, and
// a trigger token of grp/app.
type trigFixture struct {
	s        *server
	appID    string
	depID    string
	token    string
	trigID   string
	work     string
	runners  bool // jobs actually run (built-in runners present)
	firstPID any
}

func newTrigFixture(t *testing.T, kind string, extra ...string) *trigFixture {
	s := newServer(t, kind, extra...)
	s.start()
	f := &trigFixture{s: s}
	var group, app, dep map[string]any
	if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Grp", "path": "grp"}, &group); code != 201 {
		t.Fatalf("create group: %d %v", code, group)
	}
	s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &app)
	s.call("POST", "/api/v4/projects", url.Values{"name": {"Deployer"}, "path": {"deployer"}, "namespace_id": {jsonID(group["id"])}}, &dep)
	f.appID, f.depID = jsonID(app["id"]), jsonID(dep["id"])
	// grp/app's jobs trigger grp/deployer with CI_JOB_TOKEN: deployer lets
	// other projects' job tokens in (new projects limit them to their own,
	// as GitLab 18 does; GitLab would list grp/app in its allowlist).
	if code, _ := s.call("PUT", "/api/v4/projects/"+f.depID, url.Values{"ci_job_token_scope_enabled": {"false"}}, nil); code != 200 {
		t.Fatalf("open grp/deployer to other projects' job tokens: %d", code)
	}

	dw := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": trigDeployerCI})
	git(t, dw, "push", "-q", s.authURL("grp/deployer"), "main")

	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": trigAppCI, "child.yml": trigChildCI})
	f.work = w
	git(t, w, "push", "-q", s.authURL("grp/app"), "main")
	git(t, w, "push", "-q", s.authURL("grp/app"), "main:release-1.2", "main:feature/x")
	git(t, w, "checkout", "-q", "-b", "nocfg")
	git(t, w, "rm", "-q", ".gitlab-ci.yml")
	git(t, w, "commit", "-q", "-m", "no CI")
	git(t, w, "push", "-q", s.authURL("grp/app"), "nocfg")
	git(t, w, "checkout", "-q", "main")
	git(t, w, "checkout", "-q", "-b", "empty")
	trigWriteFile(t, w, ".gitlab-ci.yml", "pushes-only:\n  script: echo\n  except: [triggers]\n")
	git(t, w, "commit", "-q", "-am", "push-only CI")
	git(t, w, "push", "-q", s.authURL("grp/app"), "empty")
	git(t, w, "checkout", "-q", "main")
	git(t, w, "checkout", "-q", "-b", "broken")
	trigWriteFile(t, w, ".gitlab-ci.yml", "job:\n  script: echo\n  when: sometimes\n")
	git(t, w, "commit", "-q", "-am", "broken CI")
	git(t, w, "push", "-q", s.authURL("grp/app"), "broken")
	git(t, w, "checkout", "-q", "main")

	var tr map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"nightly"}}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	f.token, f.trigID = tr["token"].(string), jsonID(tr["id"])
	return f
}

func trigWriteFile(t *testing.T, dir, name, content string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `cat > "$1"`, "sh", dir+"/"+name)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v %s", name, err, out)
	}
}

// TestTriggers runs every curl example of GitLab's "Triggering pipelines
// through the API" documentation against the real binary, plus every
// refusal, the deliveries log, bridges and job tokens.
func TestTriggers(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testTriggers(t, kind) })
	}
}

func testTriggers(t *testing.T, kind string) {
	f := newTrigFixture(t, kind)
	s := f.s
	api := s.URL + "/api/v4/projects/" + f.appID

	t.Run("tokens", func(t *testing.T) {
		if !regexp.MustCompile(`^glptt-[0-9a-f]{40}$`).MatchString(f.token) {
			t.Fatalf("token %q is not glptt- + 40 hex", f.token)
		}
		var list []map[string]any
		s.call("GET", "/api/v4/projects/"+f.appID+"/triggers", nil, &list)
		if len(list) != 1 || list[0]["token"] != f.token[6:10] || list[0]["description"] != "nightly" || list[0]["owner"].(map[string]any)["username"] != "root" {
			t.Fatalf("list: %v", list)
		}
		for _, k := range []string{"id", "token", "description", "created_at", "updated_at", "last_used", "expires_at", "owner"} {
			if _, ok := list[0][k]; !ok {
				t.Fatalf("field %s missing: %v", k, list[0])
			}
		}
		var upd map[string]any
		if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+f.trigID, url.Values{"description": {"nightly build"}}, &upd); code != 200 || upd["description"] != "nightly build" {
			t.Fatalf("PUT: %d %v", code, upd)
		}
		if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{}, nil); code != 400 {
			t.Fatalf("POST without description: %d", code)
		}
		if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"x"}, "expires_at": {"abc"}}, nil); code != 400 {
			t.Fatalf("POST with bad expires_at: %d", code)
		}
		// v3: by token, with no description.
		var v3 map[string]any
		if code, _ := s.call("POST", "/api/v3/projects/"+f.appID+"/triggers", nil, &v3); code != 201 || !strings.HasPrefix(v3["token"].(string), "glptt-") {
			t.Fatalf("v3 POST: %d %v", code, v3)
		}
		tok3 := v3["token"].(string)
		var v3list []map[string]any
		if s.call("GET", "/api/v3/projects/"+f.appID+"/triggers", nil, &v3list); len(v3list) != 2 {
			t.Fatalf("v3 list: %v", v3list)
		}
		if code, _ := s.call("GET", "/api/v3/projects/"+f.appID+"/triggers/"+tok3, nil, &v3); code != 200 || v3["token"] != tok3[6:10] {
			t.Fatalf("v3 GET: %d %v", code, v3)
		}
		if code, _ := s.call("GET", "/api/v3/projects/"+f.appID+"/triggers/"+tok3[6:10], nil, nil); code != 404 {
			t.Fatalf("v3 GET by short token: %d, want 404 (only hashes are stored)", code)
		}
		if code, _ := s.call("DELETE", "/api/v3/projects/"+f.appID+"/triggers/"+tok3, nil, nil); code != 200 {
			t.Fatalf("v3 DELETE: %d", code)
		}
		trigForm(t, api+"/trigger/pipeline", "token", tok3, "ref", "main").want(t, 404, "v3-deleted token")
	})

	t.Run("curl-form", func(t *testing.T) {
		// curl -X POST -F token=TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/<id>/trigger/pipeline
		r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", api+"/trigger/pipeline").want(t, 201, "curl -F")
		o := r.obj
		if o["source"] != "trigger" || o["ref"] != "main" || o["status"] == nil || o["web_url"] == nil || o["iid"] == nil || o["sha"] == nil {
			t.Fatalf("pipeline JSON: %s", r.raw)
		}
		if u, _ := o["user"].(map[string]any); u["username"] != "root" {
			t.Fatalf("user: %v", o["user"])
		}
		f.firstPID = o["id"]
		jobs := s.trigJobsOf(f.appID, o["id"])
		if _, ok := jobs["payload"]; !ok || jobs["upload"] != "" {
			t.Fatalf("jobs: %v", jobs)
		}
		vars := s.trigPipelineVars(f.appID, o["id"])
		if v := vars["TRIGGER_PAYLOAD"]; v[1] != "file" || v[0] != `{"id":"`+f.appID+`","ref":"main","variables":{}}` {
			t.Fatalf("TRIGGER_PAYLOAD: %v", v)
		}
		var tr map[string]any
		s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/"+f.trigID, nil, &tr)
		if tr["last_used"] == nil {
			t.Fatalf("last_used not updated: %v", tr)
		}
		f.runners = s.trigWaitPipeline(f.appID, o["id"], 10*time.Second) == "success"
		t.Logf("jobs run: %v", f.runners)
	})

	t.Run("query-string", func(t *testing.T) {
		// curl -X POST "https://gitlab.example.com/api/v4/projects/<id>/trigger/pipeline?token=TOKEN&ref=main"
		r := trigCurl(t, "-X", "POST", api+"/trigger/pipeline?token="+f.token+"&ref=main").want(t, 201, "query string")
		if r.obj["source"] != "trigger" {
			t.Fatal(r.raw)
		}
	})

	t.Run("variables", func(t *testing.T) {
		// curl -X POST -F token=TOKEN -F ref=main -F "variables[UPLOAD_TO_S3]=true" .../trigger/pipeline
		r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", "-F", "variables[UPLOAD_TO_S3]=true", api+"/trigger/pipeline").want(t, 201, "variables")
		jobs := s.trigJobsOf(f.appID, r.obj["id"])
		if _, ok := jobs["upload"]; !ok {
			t.Fatalf("upload job missing: %v", jobs)
		}
		if v := s.trigPipelineVars(f.appID, r.obj["id"]); v["UPLOAD_TO_S3"] != [2]string{"true", "env_var"} {
			t.Fatalf("variables: %v", v)
		}
		if f.runners {
			if st := s.trigWaitPipeline(f.appID, r.obj["id"], 30*time.Second); st != "success" {
				t.Fatalf("pipeline with UPLOAD_TO_S3 ended %s", st)
			}
			if jobs := s.trigJobsOf(f.appID, r.obj["id"]); jobs["upload"] != "success" {
				t.Fatalf("upload job: %v", jobs)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		for _, body := range []string{
			`{"token":"` + f.token + `","ref":"main","variables":{"UPLOAD_TO_S3":"true"}}`,
			`{"token":"` + f.token + `","ref":"main","variables[UPLOAD_TO_S3]":"true"}`,
		} {
			r := trigCurl(t, "-X", "POST", "-H", "Content-Type: application/json", "--data", body, api+"/trigger/pipeline").want(t, 201, "json "+body)
			if _, ok := s.trigJobsOf(f.appID, r.obj["id"])["upload"]; !ok {
				t.Fatalf("variables from %s were dropped", body)
			}
		}
		// Mixed: token in the query, the rest in the body.
		trigDo(t, "POST", api+"/trigger/pipeline?token="+f.token, "application/x-www-form-urlencoded",
			strings.NewReader("ref=main&variables[UPLOAD_TO_S3]=true"), nil).want(t, 201, "mixed")
	})

	t.Run("webhook", func(t *testing.T) {
		// https://gitlab.example.com/api/v4/projects/<id>/ref/<ref_name>/trigger/pipeline?token=TOKEN
		push := `{"object_kind":"push","event_name":"push","ref":"refs/heads/other-branch","checkout_sha":"abc","project":{"id":9,"name":"upstream"}}`
		r := trigDo(t, "POST", api+"/ref/main/trigger/pipeline?token="+f.token+"&variables[UPLOAD_TO_S3]=true", "application/json",
			strings.NewReader(push), map[string]string{"X-Gitlab-Event": "Push Hook"}).want(t, 201, "webhook")
		if r.obj["ref"] != "main" {
			t.Fatalf("URL ref lost to the body's: %v", r.obj["ref"])
		}
		vars := s.trigPipelineVars(f.appID, r.obj["id"])
		p := vars["TRIGGER_PAYLOAD"]
		if p[1] != "file" || !strings.Contains(p[0], `"object_kind":"push"`) || !strings.Contains(p[0], `"ref":"main"`) ||
			!strings.Contains(p[0], `"checkout_sha":"abc"`) || strings.Contains(p[0], f.token) || !strings.Contains(p[0], `"UPLOAD_TO_S3":"true"`) {
			t.Fatalf("TRIGGER_PAYLOAD = %v", p)
		}
		if f.runners {
			if st := s.trigWaitPipeline(f.appID, r.obj["id"], 30*time.Second); st != "success" {
				t.Fatalf("webhook pipeline (payload job reads TRIGGER_PAYLOAD) ended %s", st)
			}
		}
		// Refs with dots and URL-encoded slashes; :id as an encoded path.
		trigForm(t, s.URL+"/api/v4/projects/grp%2Fapp/ref/release-1.2/trigger/pipeline?token="+f.token).want(t, 201, "dotted ref")
		r = trigForm(t, s.URL+"/api/v4/projects/grp%2Fapp/ref/feature%2Fx/trigger/pipeline?token="+f.token).want(t, 201, "slashed ref")
		if r.obj["ref"] != "feature/x" {
			t.Fatalf("ref = %v", r.obj["ref"])
		}
		trigForm(t, s.URL+"/api/v4/projects/grp%2Fapp/trigger/pipeline", "token", f.token, "ref", "release-1.2").want(t, 201, "path id")
	})

	t.Run("v3", func(t *testing.T) {
		// curl -X POST -F token=TOKEN -F ref=master https://gitlab.example.com/api/v3/projects/<id>/trigger/builds
		r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", "-F", "variables[RUN_NIGHTLY_BUILD]=true", s.URL+"/api/v3/projects/"+f.appID+"/trigger/builds").want(t, 201, "v3")
		if r.obj["id"] == nil || r.obj["variables"].(map[string]any)["RUN_NIGHTLY_BUILD"] != "true" {
			t.Fatalf("v3 answer: %s", r.raw)
		}
		trigDo(t, "POST", s.URL+"/api/v3/projects/"+f.appID+"/ref/main/trigger/builds?token="+f.token, "application/json",
			strings.NewReader(`{"ref":"refs/heads/x"}`), nil).want(t, 201, "v3 webhook")
		// Cron-style (the 8.x docs' nightly build):
		// 30 0 * * * curl --request POST --form token=TOKEN --form ref=master .../trigger/builds
		trigCurl(t, "--request", "POST", "--form", "token="+f.token, "--form", "ref=main", s.URL+"/api/v3/projects/"+f.appID+"/trigger/builds").want(t, 201, "cron")
	})

	t.Run("errors", func(t *testing.T) {
		before := len(s.trigPipelinesOf(f.appID, "per_page=100"))
		post := func(fields ...string) trigResp { return trigForm(t, api+"/trigger/pipeline", fields...) }
		type c struct {
			name string
			r    trigResp
			code int
			body string
		}
		var other map[string]any
		s.call("POST", "/api/v4/projects/"+f.depID+"/triggers", url.Values{"description": {"deployer"}}, &other)
		base := func(msg string) string { return `{"message":{"base":["` + msg + `"]}}` }
		cases := []c{
			{"unknown token", post("token", "glptt-0000000000000000000000000000000000000000", "ref", "main"), 404, `{"message":"404 Not Found"}`},
			{"other project's token", post("token", other["token"].(string), "ref", "main"), 404, `{"message":"404 Not Found"}`},
			{"PAT", post("token", rootToken, "ref", "main"), 404, `{"message":"404 Not Found"}`},
			{"unknown project", trigForm(t, s.URL+"/api/v4/projects/9999/trigger/pipeline", "token", f.token, "ref", "main"), 404, `{"message":"404 Not Found"}`},
			{"missing token", post("ref", "main"), 400, `{"error":"token is missing"}`},
			{"missing ref", post("token", f.token), 400, `{"error":"ref is missing"}`},
			{"SHA", post("token", f.token, "ref", strings.TrimSpace(git(t, f.work, "rev-parse", "main"))), 400, base("Reference not found")},
			{"HEAD", post("token", f.token, "ref", "HEAD"), 400, base("Reference not found")},
			{"unknown ref", post("token", f.token, "ref", "nope"), 400, base("Reference not found")},
			{"no CI file", post("token", f.token, "ref", "nocfg"), 400, base("Missing CI config file")},
			{"empty pipeline", post("token", f.token, "ref", "empty"), 400, ""},
			{"YAML error", post("token", f.token, "ref", "broken"), 400, ""},
			{"bad variables", trigDo(t, "POST", api+"/trigger/pipeline", "application/json",
				strings.NewReader(`{"token":"`+f.token+`","ref":"main","variables":{"A":1}}`), nil), 400, `{"message":"variables needs to be a map of key-valued strings"}`},
			{"loop guard", trigDo(t, "POST", api+"/ref/main/trigger/pipeline?token="+f.token, "application/json",
				strings.NewReader(`{"object_kind":"pipeline"}`), map[string]string{"X-Gitlab-Event": "Pipeline Hook"}), 403, `{"message":"403 Forbidden"}`},
		}
		for _, tc := range cases {
			if tc.r.code != tc.code || (tc.body != "" && strings.TrimSpace(tc.r.raw) != tc.body) {
				t.Errorf("%s: %d %s, want %d %s", tc.name, tc.r.code, tc.r.raw, tc.code, tc.body)
			}
		}
		if r := cases[10].r; !strings.Contains(r.raw, "Pipeline will not run for the selected trigger") {
			t.Errorf("empty pipeline message: %s", r.raw)
		}
		if r := cases[11].r; !strings.Contains(r.raw, `"base"`) || !strings.Contains(r.raw, "when") {
			t.Errorf("YAML error message: %s", r.raw)
		}
		if after := len(s.trigPipelinesOf(f.appID, "per_page=100")); after != before {
			t.Errorf("refusals created %d pipelines", after-before)
		}

		// Revocation takes effect at once.
		var tmp map[string]any
		s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"temp"}}, &tmp)
		post("token", tmp["token"].(string), "ref", "main").want(t, 201, "fresh token")
		if code, _ := s.call("DELETE", "/api/v4/projects/"+f.appID+"/triggers/"+jsonID(tmp["id"]), nil, nil); code != 204 {
			t.Fatalf("DELETE: %d", code)
		}
		post("token", tmp["token"].(string), "ref", "main").want(t, 404, "revoked token")

		// Expiry.
		exp := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"short-lived"}, "expires_at": {exp}}, &tmp)
		post("token", tmp["token"].(string), "ref", "main").want(t, 201, "before expiry")
		time.Sleep(time.Until(time.Now().Add(1600 * time.Millisecond)))
		post("token", tmp["token"].(string), "ref", "main").want(t, 404, "expired token")

		// A trigger whose owner lost access is invalid and refused.
		var u map[string]any
		s.call("POST", "/api/v4/users", map[string]any{"username": "maint", "name": "Maint", "email": "m@example.com", "password": "password123456"}, &u)
		var pat map[string]any
		s.call("POST", "/api/v4/users/"+jsonID(u["id"])+"/personal_access_tokens", map[string]any{"name": "t", "scopes": []string{"api"}}, &pat)
		s.call("POST", "/api/v4/projects/"+f.appID+"/members", url.Values{"user_id": {jsonID(u["id"])}, "access_level": {"40"}}, nil)
		var mt map[string]any
		if code, _ := s.callAs(pat["token"].(string), "POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"maint's"}}, &mt); code != 201 {
			t.Fatalf("maintainer creates trigger: %d %v", code, mt)
		}
		// Only the owner may edit it.
		if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+jsonID(mt["id"]), url.Values{"description": {"x"}}, nil); code != 403 {
			t.Fatalf("PUT by non-owner: %d", code)
		}
		post("token", mt["token"].(string), "ref", "main").want(t, 201, "maintainer's trigger")
		s.call("DELETE", "/api/v4/projects/"+f.appID+"/members/"+jsonID(u["id"]), nil, nil)
		r := post("token", mt["token"].(string), "ref", "main").want(t, 400, "owner without access")
		if !strings.Contains(r.raw, "Insufficient permissions to create a new pipeline") {
			t.Fatalf("owner without access: %s", r.raw)
		}
		var got map[string]any
		s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/"+jsonID(mt["id"]), nil, &got)
		if got["can_access_project"] != false {
			t.Fatalf("trigger of an owner without access not shown invalid: %v", got)
		}
		// Developers cannot manage triggers.
		s.call("POST", "/api/v4/projects/"+f.appID+"/members", url.Values{"user_id": {jsonID(u["id"])}, "access_level": {"30"}}, nil)
		if code, _ := s.callAs(pat["token"].(string), "GET", "/api/v4/projects/"+f.appID+"/triggers", nil, nil); code != 403 {
			t.Fatalf("developer lists triggers: %d", code)
		}
	})

	t.Run("deliveries", func(t *testing.T) {
		trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "variables[SECRET_THING]", "hunter2-value").want(t, 201, "with secret")
		trigForm(t, api+"/trigger/pipeline", "token", "glptt-ffff000000000000000000000000000000000000", "ref", "main").want(t, 404, "bad token")
		var ds []map[string]any
		code, hdr := s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=100", nil, &ds)
		if code != 200 || hdr.Get("X-Total") == "" || len(ds) < 5 {
			t.Fatalf("deliveries: %d %d", code, len(ds))
		}
		// The bad token's call is not in the log: only callers holding a
		// token of the project write to it.
		if ds[0]["result"] != "created" || ds[0]["pipeline_id"] == nil || ds[0]["source_ip"] != "127.0.0.1" ||
			fmt.Sprint(ds[0]["variables"]) != "[SECRET_THING]" || ds[0]["short_token"] != f.token[6:10] {
			t.Fatalf("accepted delivery: %v", ds[0])
		}
		var raw bytes.Buffer
		for _, d := range ds {
			fmt.Fprint(&raw, d)
		}
		if strings.Contains(raw.String(), "hunter2-value") || strings.Contains(raw.String(), f.token) {
			t.Fatal("deliveries contain a variable value or a token")
		}
		reasons := map[string]bool{}
		for _, d := range ds {
			reasons[d["reason"].(string)] = true
		}
		for _, want := range []string{"Reference not found", "Missing CI config file",
			"loop guard: X-Gitlab-Event: Pipeline Hook is refused", "variables needs to be a map of key-valued strings"} {
			if !reasons[want] {
				t.Errorf("no delivery with reason %q (have %v)", want, reasons)
			}
		}
		for _, unwanted := range []string{"unknown or revoked token", "token of another project", "token is missing"} {
			if reasons[unwanted] {
				t.Errorf("a call without a token of the project was logged: %q", unwanted)
			}
		}
		if strings.Contains(s.Log(), "hunter2-value") || strings.Contains(s.Log(), f.token) {
			t.Fatal("the server log contains a variable value or a token")
		}
	})

	t.Run("bridges", func(t *testing.T) {
		// Child pipeline through trigger: include:.
		r := trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "variables[CHILD]", "yes").want(t, 201, "child")
		var bridges []map[string]any
		if !trigWaitFor(10*time.Second, func() bool {
			s.call("GET", "/api/v4/projects/"+f.appID+"/pipelines/"+jsonID(r.obj["id"])+"/bridges", nil, &bridges)
			return len(bridges) == 1 && bridges[0]["downstream_pipeline"] != nil
		}) {
			t.Fatalf("child bridge: %v", bridges)
		}
		child := bridges[0]["downstream_pipeline"].(map[string]any)
		if pls := s.trigPipelinesOf(f.appID, "source=parent_pipeline"); len(pls) != 1 || jsonID(pls[0]["id"]) != jsonID(child["id"]) || pls[0]["source"] != "parent_pipeline" {
			t.Fatalf("child pipeline: %v vs %v", pls, child)
		}
		if jobs := s.trigJobsOf(f.appID, child["id"]); jobs["child-job"] == "" {
			t.Fatalf("child jobs: %v", jobs)
		}
		if f.runners {
			// strategy: depend mirrors the child's result onto the bridge;
			// forward: pipeline_variables passes CHILD_FAIL down.
			if st := s.trigWaitPipeline(f.appID, r.obj["id"], 30*time.Second); st != "success" {
				t.Fatalf("parent with a succeeding child ended %s", st)
			}
			r = trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "variables[CHILD]", "yes", "variables[CHILD_FAIL]", "yes").want(t, 201, "failing child")
			if st := s.trigWaitPipeline(f.appID, r.obj["id"], 30*time.Second); st != "failed" {
				t.Fatalf("parent with a failing child ended %s", st)
			}
			s.call("GET", "/api/v4/projects/"+f.appID+"/pipelines/"+jsonID(r.obj["id"])+"/bridges", nil, &bridges)
			if len(bridges) != 1 || bridges[0]["status"] != "failed" {
				t.Fatalf("depend bridge of a failed child: %v", bridges)
			}
		}

		// A tag runs the multi-project bridge (and, with runners, the job
		// that triggers grp/deployer with CI_JOB_TOKEN).
		git(t, f.work, "tag", "v1.0")
		git(t, f.work, "push", "-q", s.authURL("grp/app"), "v1.0")
		var down []map[string]any
		if !trigWaitFor(15*time.Second, func() bool {
			down = s.trigPipelinesOf(f.depID, "source=pipeline")
			return len(down) >= 1
		}) {
			t.Fatalf("no downstream pipeline in grp/deployer; upstream pipelines: %v", s.trigPipelinesOf(f.appID, "ref=v1.0"))
		}
		dv := s.trigPipelineVars(f.depID, down[len(down)-1]["id"])
		if dv["DEPLOY_ENV"][0] != "production" {
			t.Fatalf("forwarded variables: %v", dv)
		}
		up := s.trigPipelinesOf(f.appID, "ref=v1.0")
		if len(up) != 1 {
			t.Fatalf("tag pipelines: %v", up)
		}
		if !trigWaitFor(10*time.Second, func() bool {
			s.call("GET", "/api/v4/projects/"+f.appID+"/pipelines/"+jsonID(up[0]["id"])+"/bridges", nil, &bridges)
			return len(bridges) == 1 && bridges[0]["status"] == "success"
		}) {
			t.Fatalf("bridge status (no strategy: success once created): %v", bridges)
		}
		if f.runners {
			if !trigWaitFor(30*time.Second, func() bool { return len(s.trigPipelinesOf(f.depID, "source=pipeline")) >= 2 }) {
				t.Fatalf("CI_JOB_TOKEN trigger created no pipeline: %v", s.trigJobsOf(f.appID, up[0]["id"]))
			}
		}
	})

	t.Run("kiln-trigger", func(t *testing.T) {
		run := func(args ...string) (int, string) {
			cmd := exec.Command(kilnBin, append([]string{"trigger"}, args...)...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return code, string(out)
		}
		common := []string{"--url", s.URL, "--project", "grp/app", "--ref", "main"}
		if code, _ := run("--url", s.URL); code != 2 {
			t.Fatalf("usage: exit %d", code)
		}
		if code, out := run(append(common, "--token", "glptt-nope")...); code != 3 || !strings.Contains(out, "404") {
			t.Fatalf("bad token: exit %d %s", code, out)
		}
		code, out := run(append(common, "--token", f.token, "--var", "UPLOAD_TO_S3=true")...)
		if code != 0 || !strings.Contains(out, s.URL+"/grp/app/-/pipelines/") {
			t.Fatalf("no wait: exit %d %s", code, out)
		}
		if f.runners {
			code, out = run(append(common, "--token", f.token, "--wait", "--timeout", "60s")...)
			if code != 0 || !strings.Contains(out, "build: success") || !strings.Contains(out, "success") {
				t.Fatalf("--wait success: exit %d %s", code, out)
			}
			code, out = run(append(common, "--token", f.token, "--var", "MAKE_IT_FAIL=yes", "--wait", "--timeout", "60s")...)
			if code != 1 || !strings.Contains(out, "fail: failed") {
				t.Fatalf("--wait failure: exit %d %s", code, out)
			}
		} else {
			code, out = run(append(common, "--token", f.token, "--wait", "--timeout", "1s")...)
			if code != 4 || !strings.Contains(out, "/-/pipelines/") {
				t.Fatalf("--wait timeout: exit %d %s", code, out)
			}
		}
	})

	// Last: it blocks this client address for a while.
	t.Run("failed-attempt-limit", func(t *testing.T) {
		var last trigResp
		for i := 0; i < 40; i++ {
			last = trigForm(t, api+"/trigger/pipeline", "token", fmt.Sprintf("glptt-guess%034d", i), "ref", "main")
			if last.code == 429 {
				break
			}
		}
		if last.code != 429 || last.hdr.Get("Retry-After") == "" {
			t.Fatalf("no 429 after repeated failures: %d %v", last.code, last.hdr)
		}
		// Even the right token waits now, so that a guesser learns nothing.
		trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main").want(t, 429, "valid token while blocked")
		var ds []map[string]any
		s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=5", nil, &ds)
		n := 0
		for _, d := range ds {
			if d["status_code"] == float64(429) {
				n++
			}
		}
		// A blocked address's calls are refused before any token is
		// checked, so none of them is written to the project's log (the
		// metrics count them).
		if n != 0 {
			t.Fatalf("blocked calls were logged: %d: %v", n, ds)
		}
	})
	s.stop()
}

// TestTriggerRateLimit: --trigger-rate-limit bounds pipeline creation per
// project and minute, with GitLab's message and a Retry-After.
func TestTriggerRateLimit(t *testing.T) {
	f := newTrigFixture(t, "sqlite", "--trigger-rate-limit", "2")
	api := f.s.URL + "/api/v4/projects/" + f.appID + "/trigger/pipeline"
	trigForm(t, api, "token", f.token, "ref", "main").want(t, 201, "1st")
	trigForm(t, api, "token", f.token, "ref", "main").want(t, 201, "2nd")
	r := trigForm(t, api, "token", f.token, "ref", "main").want(t, 429, "3rd")
	if !strings.Contains(r.raw, "Too many pipelines created in the last minute. Try again later.") || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("rate limited answer: %v %s", r.hdr, r.raw)
	}
}
