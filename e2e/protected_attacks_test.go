package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Issue 11, "What was found" item 1: a developer must not get a pipeline on
// a protected ref (where protected, masked variables are handed to jobs)
// by any path. Each test below performs one attack as the developer would,
// against the real binary with a real `kiln runner`, and checks the
// refusal, that no pipeline was created on the protected ref, and that the
// protected secret reached no job log (neither plain nor base64, which
// masking would not catch).

const attackSecret = "pr0tected-S3CRET-value-2718"

// BASH_ENV is expanded (command substitution included) by every
// non-interactive bash a job starts: a pipeline variable like this one runs
// the attacker's code next to the protected secrets.
const attackBashEnv = `$(echo $DEPLOY_SECRET | base64 >&2)`

const attackMainCI = `deploy:
  script:
    - echo "deploying main"
`

// attackFixture is a server with group grp holding grp/app (a protected,
// masked DEPLOY_SECRET; main is protected as the default branch) and
// grp/tools, a developer "dev" of the whole group, a maintainer "maint" of
// grp/app, and an external runner that runs every job.
type attackFixture struct {
	s                *server
	appID, toolsID   string
	devID, maintID   int64
	devTok, maintTok string
}

func newAttackFixture(t *testing.T, kind ...string) *attackFixture {
	k := "sqlite"
	if len(kind) > 0 {
		k = kind[0]
	}
	s := newServer(t, k, "--builtin-runners", "0")
	s.start()
	f := &attackFixture{s: s}
	var group, app, tools map[string]any
	if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Grp", "path": "grp"}, &group); code != 201 {
		t.Fatalf("create group: %d %v", code, group)
	}
	s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &app)
	s.call("POST", "/api/v4/projects", url.Values{"name": {"Tools"}, "path": {"tools"}, "namespace_id": {jsonID(group["id"])}}, &tools)
	f.appID, f.toolsID = jsonID(app["id"]), jsonID(tools["id"])
	if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/variables",
		map[string]any{"key": "DEPLOY_SECRET", "value": attackSecret, "protected": true, "masked": true}, nil); code != 201 {
		t.Fatalf("create protected variable: %d", code)
	}
	f.devID, f.devTok = s.newUser("dev")
	f.maintID, f.maintTok = s.newUser("maint")
	if code, _ := s.call("POST", "/api/v4/groups/"+jsonID(group["id"])+"/members", url.Values{"user_id": {fmt.Sprint(f.devID)}, "access_level": {"30"}}, nil); code != 201 {
		t.Fatalf("dev group member: %d", code)
	}
	if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/members", url.Values{"user_id": {fmt.Sprint(f.maintID)}, "access_level": {"40"}}, nil); code != 201 {
		t.Fatalf("maint member: %d", code)
	}
	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": attackMainCI})
	git(t, w, "push", "-q", s.authURL("grp/app"), "main")
	git(t, w, "push", "-q", s.authURL("grp/tools"), "main")
	_, rtok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "shell", "run_untagged": true})
	startRunner(t, s, "shell", rtok)
	// The initial push pipelines run to completion first, so that the
	// counts below only see what the attacks create.
	waitPipeline(t, s, f.appID, "main", 60*time.Second)
	waitPipeline(t, s, f.toolsID, "main", 60*time.Second)
	return f
}

// devURL is the repository URL with the developer's token as password.
func (f *attackFixture) devURL(path string) string {
	return strings.Replace(f.s.authURL(path), "root:"+rootToken, "dev:"+f.devTok, 1)
}

// pipelines lists a project's pipelines on ref (any source), newest first.
func (f *attackFixture) pipelines(pid, ref string) []map[string]any {
	var pls []map[string]any
	f.s.call("GET", "/api/v4/projects/"+pid+"/pipelines?per_page=100&ref="+url.QueryEscape(ref), nil, &pls)
	return pls
}

// assertNoSecretInLogs reads every job log of both projects.
func (f *attackFixture) assertNoSecretInLogs(t *testing.T) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString([]byte(attackSecret + "\n"))
	for _, pid := range []string{f.appID, f.toolsID} {
		var jobs []map[string]any
		f.s.call("GET", "/api/v4/projects/"+pid+"/jobs?per_page=100", nil, &jobs)
		for _, j := range jobs {
			if j["status"] == "created" || j["status"] == "pending" || j["status"] == "skipped" || j["status"] == "manual" {
				continue
			}
			if tr := jobTrace(t, f.s, pid, jsonID(j["id"])); strings.Contains(tr, attackSecret) || strings.Contains(tr, b64[:20]) {
				t.Errorf("job %v (%v on %v) printed the protected secret:\n%s", j["id"], j["name"], j["ref"], tr)
			}
		}
	}
}

// TestProtectedRefJobTokenTrigger: a job on the developer's branch calls
// the trigger API with its CI_JOB_TOKEN and ref=main.
func TestProtectedRefJobTokenTrigger(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testProtectedRefJobTokenTrigger(t, kind) })
	}
}

func testProtectedRefJobTokenTrigger(t *testing.T, kind string) {
	f := newAttackFixture(t, kind)
	before := len(f.pipelines(f.appID, "main"))
	ci := `attack:
  script:
    - |
      curl -s -o resp.json -w "status=%{http_code}\n" -X POST -F "token=$CI_JOB_TOKEN" -F ref=main -F 'variables[BASH_ENV]=` + attackBashEnv + `' "$CI_API_V4_URL/projects/$CI_PROJECT_ID/trigger/pipeline"
      echo "body=$(cat resp.json)"
`
	w := newWorkRepo(t, "dev-x", map[string]string{".gitlab-ci.yml": ci})
	git(t, w, "push", "-q", f.devURL("grp/app"), "dev-x")
	pl := waitPipeline(t, f.s, f.appID, "dev-x", 90*time.Second)
	jobs := pipelineJobs(t, f.s, f.appID, pl)
	tr := jobTrace(t, f.s, f.appID, jsonID(jobs["attack"]["id"]))
	if !strings.Contains(tr, "status=400") || !strings.Contains(tr, `body={"message":{"base":["Insufficient permissions for protected ref 'main'"]}}`) {
		t.Errorf("job token trigger on main was not refused with 400 and GitLab's message:\n%s", tr)
	}
	if n := len(f.pipelines(f.appID, "main")); n != before {
		t.Errorf("pipelines on main: %d, want %d", n, before)
	}
	f.assertNoSecretInLogs(t)
}

// TestProtectedRefMultiProjectBridge: a bridge on the developer's branch of
// grp/tools triggers grp/app's protected main with a BASH_ENV variable.
func TestProtectedRefMultiProjectBridge(t *testing.T) {
	f := newAttackFixture(t)
	before := len(f.pipelines(f.appID, "main"))
	ci := `escalate:
  variables:
    BASH_ENV: '` + attackBashEnv + `'
  trigger:
    project: grp/app
    branch: main
`
	w := newWorkRepo(t, "dev-bridge", map[string]string{".gitlab-ci.yml": ci})
	git(t, w, "push", "-q", f.devURL("grp/tools"), "dev-bridge")
	pl := waitPipeline(t, f.s, f.toolsID, "dev-bridge", 90*time.Second)
	var bridges []map[string]any
	f.s.call("GET", "/api/v4/projects/"+f.toolsID+"/pipelines/"+jsonID(pl["id"])+"/bridges", nil, &bridges)
	if len(bridges) != 1 || bridges[0]["status"] != "failed" || bridges[0]["failure_reason"] != "insufficient_bridge_permissions" || bridges[0]["downstream_pipeline"] != nil {
		t.Errorf("bridge to a protected ref: %v", bridges)
	}
	if n := len(f.pipelines(f.appID, "main")); n != before {
		t.Errorf("pipelines on grp/app main: %d, want %d", n, before)
	}
	f.assertNoSecretInLogs(t)
}

// TestProtectedRefDemotedTriggerOwner: a trigger token made by a maintainer
// who was later demoted to developer no longer reaches main, though it
// still runs pipelines on unprotected branches (its owner is a developer).
func TestProtectedRefDemotedTriggerOwner(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testProtectedRefDemotedTriggerOwner(t, kind) })
	}
}

func testProtectedRefDemotedTriggerOwner(t *testing.T, kind string) {
	f := newAttackFixture(t, kind)
	s := f.s
	git(t, newWorkRepo(t, "feature", map[string]string{".gitlab-ci.yml": attackMainCI}), "push", "-q", s.authURL("grp/app"), "feature")
	var tr map[string]any
	if code, _ := s.callAs(f.maintTok, "POST", "/api/v4/projects/"+f.appID+"/triggers", url.Values{"description": {"deploys"}}, &tr); code != 201 {
		t.Fatalf("maintainer creates trigger: %d %v", code, tr)
	}
	token := tr["token"].(string)
	if code, _ := s.call("PUT", fmt.Sprintf("/api/v4/projects/%s/members/%d", f.appID, f.maintID), url.Values{"access_level": {"30"}}, nil); code != 200 {
		t.Fatalf("demote: %d", code)
	}
	before := len(f.pipelines(f.appID, "main"))
	r := trigForm(t, s.URL+"/api/v4/projects/"+f.appID+"/trigger/pipeline", "token", token, "ref", "main", "variables[BASH_ENV]", attackBashEnv)
	r.want(t, 400, "demoted owner's trigger on main")
	if !strings.Contains(r.raw, `{"message":{"base":["Insufficient permissions for protected ref 'main'"]}}`) {
		t.Errorf("refusal body: %s", r.raw)
	}
	if n := len(f.pipelines(f.appID, "main")); n != before {
		t.Errorf("pipelines on main: %d, want %d", n, before)
	}
	trigForm(t, s.URL+"/api/v4/projects/"+f.appID+"/trigger/pipeline", "token", token, "ref", "feature").want(t, 201, "trigger on an unprotected branch")
	f.assertNoSecretInLogs(t)
}

// TestProtectedRefScheduleShortRef: a developer schedules the short ref
// "v9" while nothing has that name; a maintainer later pushes the tag v9
// and protects v* tags. Playing the schedule must not run on the
// protected tag. The web schedule form refuses a protected ref outright.
func TestProtectedRefScheduleShortRef(t *testing.T) {
	f := newAttackFixture(t)
	s := f.s
	var sc map[string]any
	code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline_schedules",
		map[string]any{"description": "nightly", "ref": "v9", "cron": "0 4 * * *"}, &sc)
	if code != 201 {
		t.Fatalf("developer schedule on v9: %d %v", code, sc)
	}
	if code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline_schedules/"+jsonID(sc["id"])+"/variables",
		map[string]any{"key": "BASH_ENV", "value": attackBashEnv}, nil); code != 201 {
		t.Fatalf("schedule variable: %d", code)
	}
	if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/protected_tags", url.Values{"name": {"v*"}}, nil); code != 201 {
		t.Fatalf("protect tags: %d", code)
	}
	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": attackMainCI})
	git(t, w, "tag", "v9")
	git(t, w, "push", "-q", s.authURL("grp/app"), "refs/tags/v9")
	waitPipeline(t, s, f.appID, "v9", 60*time.Second)
	before := len(f.pipelines(f.appID, "v9"))

	var out map[string]any
	code, _ = s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline_schedules/"+jsonID(sc["id"])+"/play", nil, &out)
	if code == 201 {
		t.Errorf("developer played a schedule that runs on the protected tag v9: %v", out)
	} else if code == 400 && fmt.Sprint(out) != "map[message:map[base:[Insufficient permissions for protected ref 'v9']]]" {
		t.Errorf("play refusal: %d %v", code, out)
	}
	if n := len(f.pipelines(f.appID, "v9")); n != before {
		t.Errorf("pipelines on v9: %d, want %d", n, before)
	}

	// The web form: the developer signs in and submits a schedule on main.
	web := webSignIn(t, s, "dev", "password-dev")
	page := web.get(t, "/grp/app/-/pipeline_schedules/new")
	resp := web.post(t, "/grp/app/-/pipeline_schedules", page, url.Values{
		"description": {"web nightly"}, "cron": {"0 4 * * *"}, "cron_timezone": {"UTC"}, "ref": {"main"}, "active": {"1"},
		"var_key": {"BASH_ENV"}, "var_value": {attackBashEnv}})
	if resp.code != 422 || !strings.Contains(resp.body, "Insufficient permissions for protected ref &#39;main&#39;") {
		t.Errorf("web schedule form on main: %d\n%s", resp.code, resp.body)
	}
	var list []map[string]any
	s.call("GET", "/api/v4/projects/"+f.appID+"/pipeline_schedules", nil, &list)
	for _, l := range list {
		if l["ref"] == "main" || l["ref"] == "refs/heads/main" {
			t.Errorf("the web form saved a schedule on main: %v", l)
		}
	}
	f.assertNoSecretInLogs(t)
}

// webClient is a signed-in browser session without a browser.
type webClient struct {
	s *server
	c *http.Client
}

type webResp struct {
	code int
	body string
}

var csrfRe = regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`)

func webSignIn(t *testing.T, s *server, user, password string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	w := &webClient{s: s, c: &http.Client{Jar: jar}}
	page := w.get(t, "/users/sign_in")
	if r := w.post(t, "/users/sign_in", page, url.Values{"username": {user}, "password": {password}}); r.code != 200 {
		t.Fatalf("sign in as %s: %d", user, r.code)
	}
	return w
}

func (w *webClient) get(t *testing.T, path string) webResp {
	t.Helper()
	resp, err := w.c.Get(w.s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return webResp{resp.StatusCode, string(b)}
}

// post submits a form with the CSRF token of page.
func (w *webClient) post(t *testing.T, path string, page webResp, form url.Values) webResp {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the page (%d):\n%s", page.code, page.body)
	}
	form.Set("authenticity_token", m[1])
	resp, err := w.c.PostForm(w.s.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return webResp{resp.StatusCode, string(b)}
}

// TestProtectedRefPlayedBridge: a maintainer's pipeline on an unprotected
// branch holds a manual bridge to grp/app's main. A developer who plays it
// becomes the bridge's user, so the downstream pipeline would run as the
// developer on the protected main: refused.
func TestProtectedRefPlayedBridge(t *testing.T) {
	f := newAttackFixture(t)
	s := f.s
	// maint may push grp/tools branches: make them a maintainer there too.
	if code, _ := s.call("POST", "/api/v4/projects/"+f.toolsID+"/members", url.Values{"user_id": {fmt.Sprint(f.maintID)}, "access_level": {"40"}}, nil); code != 201 {
		t.Fatalf("maint member of tools: %d", code)
	}
	ci := `deploy-app:
  when: manual
  trigger:
    project: grp/app
    branch: main
`
	w := newWorkRepo(t, "maint-feature", map[string]string{".gitlab-ci.yml": ci})
	maintURL := strings.Replace(s.authURL("grp/tools"), "root:"+rootToken, "maint:"+f.maintTok, 1)
	git(t, w, "push", "-q", maintURL, "maint-feature")
	var pls []map[string]any
	if !waitFor(t, 30*time.Second, "pipeline", func() bool {
		pls = f.pipelines(f.toolsID, "maint-feature")
		return len(pls) == 1 && (pls[0]["status"] == "manual" || pls[0]["status"] == "skipped")
	}) {
		t.Fatalf("maintainer's pipeline: %v", pls)
	}
	before := len(f.pipelines(f.appID, "main"))
	var bridges []map[string]any
	s.call("GET", "/api/v4/projects/"+f.toolsID+"/pipelines/"+jsonID(pls[0]["id"])+"/bridges", nil, &bridges)
	if len(bridges) != 1 {
		t.Fatalf("bridges: %v", bridges)
	}
	var out map[string]any
	code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.toolsID+"/jobs/"+jsonID(bridges[0]["id"])+"/play", nil, &out)
	if code != 201 && code != 200 {
		t.Fatalf("developer plays the manual bridge (allowed: the branch is not protected): %d %v", code, out)
	}
	if !waitFor(t, 30*time.Second, "bridge to fail", func() bool {
		s.call("GET", "/api/v4/projects/"+f.toolsID+"/pipelines/"+jsonID(pls[0]["id"])+"/bridges", nil, &bridges)
		return len(bridges) == 1 && bridges[0]["status"] != "manual" && bridges[0]["status"] != "pending" && bridges[0]["status"] != "created"
	}) {
		t.Fatalf("bridge did not finish: %v", bridges)
	}
	if bridges[0]["status"] != "failed" || bridges[0]["failure_reason"] != "insufficient_bridge_permissions" || bridges[0]["downstream_pipeline"] != nil {
		t.Errorf("bridge played by a developer: status %v reason %v downstream %v", bridges[0]["status"], bridges[0]["failure_reason"], bridges[0]["downstream_pipeline"])
	}
	if u, _ := bridges[0]["user"].(map[string]any); u == nil || u["username"] != "dev" {
		t.Errorf("played bridge's user: %v, want dev", bridges[0]["user"])
	}
	if n := len(f.pipelines(f.appID, "main")); n != before {
		t.Errorf("pipelines on grp/app main: %d, want %d", n, before)
	}
	f.assertNoSecretInLogs(t)
}

// TestProtectedRefNestedRefName: a branch named refs/heads/main (pushed as
// HEAD:refs/heads/refs/heads/main) would be a pipeline ref that reads as
// main; its child pipeline re-resolved that name to the protected main.
// The push is refused whole, and the name is refused wherever else a ref
// name enters (schedules).
func TestProtectedRefNestedRefName(t *testing.T) {
	f := newAttackFixture(t)
	s := f.s
	ci := `spawn:
  trigger:
    include: child.yml
`
	child := `leak:
  script:
    - echo "$DEPLOY_SECRET" | base64
`
	w := newWorkRepo(t, "x", map[string]string{".gitlab-ci.yml": ci, "child.yml": child})
	before := len(f.pipelines(f.appID, "main"))
	for _, ref := range []string{"refs/heads/refs/heads/main", "refs/heads/HEAD", "refs/tags/refs/heads/main",
		"refs/heads/0123456789abcdef0123456789abcdef01234567"} {
		out, err := gitErr(w, "push", f.devURL("grp/app"), "HEAD:"+ref)
		if err == nil || !strings.Contains(out, "kiln: refusing ref '"+ref+"'") {
			t.Errorf("push to %s: err %v\n%s", ref, err, out)
		}
	}
	var branches []map[string]any
	s.call("GET", "/api/v4/projects/"+f.appID+"/repository/branches", nil, &branches)
	if len(branches) != 1 || branches[0]["name"] != "main" {
		t.Errorf("branches after refused pushes: %v", branches)
	}
	// Everyone can still push main by its short name.
	root := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": attackMainCI, "README": "2\n"})
	git(t, root, "remote", "add", "origin", s.authURL("grp/app"))
	git(t, root, "fetch", "-q", "origin")
	git(t, root, "reset", "-q", "--hard", "origin/main")
	git(t, root, "commit", "-q", "--allow-empty", "-m", "next")
	if out, err := gitErr(root, "push", "origin", "main"); err != nil {
		t.Errorf("git push origin main: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "push pipeline", func() bool { return len(f.pipelines(f.appID, "main")) == before+1 })
	waitPipeline(t, s, f.appID, "main", 60*time.Second)
	if n := len(f.pipelines(f.appID, "main")); n != before+1 {
		t.Errorf("pipelines on main: %d, want %d (only the maintainer's push)", n, before+1)
	}
	for _, p := range f.pipelines(f.appID, "refs/heads/main") {
		t.Errorf("pipeline on the nested ref: %v", p)
	}
	var out map[string]any
	code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline_schedules",
		map[string]any{"description": "x", "ref": "refs/heads/refs/heads/main", "cron": "0 4 * * *"}, &out)
	if code != 400 || fmt.Sprint(out) != "map[message:map[ref:[is invalid]]]" {
		t.Errorf("schedule on a nested ref name: %d %v", code, out)
	}
	f.assertNoSecretInLogs(t)
}

// TestJobTokenAllowlistGitClone: the job-token allowlist (on for new
// projects) holds for git over HTTP as for the REST API: a job of grp/tools
// cannot clone grp/app with its CI_JOB_TOKEN, though its user could, and
// still clones its own project.
func TestJobTokenAllowlistGitClone(t *testing.T) {
	f := newAttackFixture(t)
	var app map[string]any
	f.s.call("GET", "/api/v4/projects/"+f.appID, nil, &app)
	if app["ci_job_token_scope_enabled"] != true {
		t.Errorf("new project's ci_job_token_scope_enabled = %v, want true", app["ci_job_token_scope_enabled"])
	}
	ci := `clone:
  script:
    - U=$(echo "$CI_SERVER_URL" | sed "s#://#://gitlab-ci-token:$CI_JOB_TOKEN@#")
    - if git clone -q "$U/grp/app.git" other; then echo "cloned-other=yes"; else echo "cloned-other=no"; fi
    - if git clone -q "$U/grp/tools.git" own; then echo "cloned-own=yes"; else echo "cloned-own=no"; fi
`
	w := newWorkRepo(t, "dev-clone", map[string]string{".gitlab-ci.yml": ci})
	git(t, w, "push", "-q", f.devURL("grp/tools"), "dev-clone")
	pl := waitPipeline(t, f.s, f.toolsID, "dev-clone", 90*time.Second)
	jobs := pipelineJobs(t, f.s, f.toolsID, pl)
	tr := jobTrace(t, f.s, f.toolsID, jsonID(jobs["clone"]["id"]))
	if !outputLine(tr, "cloned-other=no") || !outputLine(tr, "cloned-own=yes") {
		t.Errorf("job-token clones:\n%s", tr)
	}
	// Opening grp/app to other projects' job tokens lets the same job in.
	if code, _ := f.s.call("PUT", "/api/v4/projects/"+f.appID, url.Values{"ci_job_token_scope_enabled": {"false"}}, nil); code != 200 {
		t.Fatalf("open grp/app: %d", code)
	}
	var retried map[string]any
	if code, _ := f.s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.toolsID+"/jobs/"+jsonID(jobs["clone"]["id"])+"/retry", nil, &retried); code != 201 {
		t.Fatalf("retry: %d %v", code, retried)
	}
	if !waitFor(t, 60*time.Second, "retried job", func() bool {
		var j map[string]any
		f.s.call("GET", "/api/v4/projects/"+f.toolsID+"/jobs/"+jsonID(retried["id"]), nil, &j)
		return j["status"] == "success" || j["status"] == "failed"
	}) {
		t.Fatal("retried job did not finish")
	}
	if tr := jobTrace(t, f.s, f.toolsID, jsonID(retried["id"])); !outputLine(tr, "cloned-other=yes") {
		t.Errorf("clone with the allowlist off:\n%s", tr)
	}
}

// outputLine reports whether a job log has line as a line of its own (the
// echoed commands hold the same words).
func outputLine(trace, line string) bool {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `\r?$`).MatchString(trace)
}
