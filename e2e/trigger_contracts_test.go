package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// contractsCount is the number of pipelines of a project.
func (f *trigFixture) count() int { return len(f.s.trigPipelinesOf(f.appID, "per_page=100")) }

// TestTriggerExactCommit: sha with ref builds that commit when it is in the
// ref's history, on the trigger API and POST /pipeline; a commit of another
// branch, an unknown commit and a malformed sha are 400s that create
// nothing.
func TestTriggerExactCommit(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			old := strings.TrimSpace(git(t, f.work, "rev-parse", "main"))
			other := strings.TrimSpace(git(t, f.work, "rev-parse", "broken"))
			trigWriteFile(t, f.work, "NEWS", "second\n")
			git(t, f.work, "add", "NEWS")
			git(t, f.work, "commit", "-q", "-m", "second commit")
			git(t, f.work, "push", "-q", s.authURL("grp/app"), "main")
			tip := strings.TrimSpace(git(t, f.work, "rev-parse", "main"))

			// An ancestor of main (a protected ref) builds exactly that commit.
			r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", "-F", "sha="+old, api+"/trigger/pipeline").want(t, 201, "sha in main's history")
			if r.obj["sha"] != old || r.obj["ref"] != "main" {
				t.Fatalf("pipeline builds %v on %v, want %s on main: %s", r.obj["sha"], r.obj["ref"], old, r.raw)
			}
			var pl map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main", "sha": strings.ToUpper(old)}, &pl); code != 201 || pl["sha"] != old {
				t.Fatalf("POST /pipeline with sha: %d %v", code, pl)
			}
			// Without sha: the tip.
			r = trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main").want(t, 201, "no sha")
			if r.obj["sha"] != tip {
				t.Fatalf("no sha builds %v, want tip %s", r.obj["sha"], tip)
			}

			before := f.count()
			for _, c := range []struct{ sha, msg string }{
				{other, "Commit " + other + " is not reachable from ref 'main'"},
				{strings.Repeat("ab", 20), "Commit not found"},
				{"HEAD~1", "sha must be a full commit SHA (40 hexadecimal characters)"},
				{old[:12], "sha must be a full commit SHA (40 hexadecimal characters)"},
			} {
				r := trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "sha", c.sha).want(t, 400, "trigger sha "+c.sha)
				if !strings.Contains(r.raw, `{"message":{"base":["`+c.msg+`"]}}`) {
					t.Fatalf("trigger sha %s: %s, want %q", c.sha, r.raw, c.msg)
				}
				var body map[string]any
				if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", url.Values{"ref": {"main"}, "sha": {c.sha}}, &body); code != 400 {
					t.Fatalf("POST /pipeline sha %s: %d %v", c.sha, code, body)
				} else if m, _ := body["message"].(map[string]any); m == nil || m["base"].([]any)[0] != c.msg {
					t.Fatalf("POST /pipeline sha %s: %v, want %q", c.sha, body, c.msg)
				}
			}
			// The other branch's own commit is fine on that branch.
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "broken", "sha", other).want(t, 400, "broken CI still refused for its YAML")
			if n := f.count(); n != before {
				t.Fatalf("refused calls created pipelines: %d -> %d", before, n)
			}
			// The refusals are in the deliveries log with their reason.
			var dl []map[string]any
			s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=100", nil, &dl)
			found := false
			for _, d := range dl {
				if strings.Contains(d["reason"].(string), "not reachable from ref 'main'") {
					found = true
				}
			}
			if !found {
				t.Fatalf("deliveries log lacks the refusal: %v", dl)
			}
		})
	}
}

// TestTriggerIdempotencyKey: the same key and parameters replay the first
// pipeline (Idempotent-Replayed: true), other parameters under the key are
// a 422, concurrent duplicates create exactly one pipeline, and keys
// survive a restart; on the trigger API and POST /pipeline.
func TestTriggerIdempotencyKey(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			post := func(key string, body string) trigResp {
				return trigDo(t, "POST", api+"/trigger/pipeline", "application/json", strings.NewReader(body), map[string]string{"Idempotency-Key": key})
			}
			body := `{"token":"` + f.token + `","ref":"main","variables":{"A":"1"}}`
			first := post("deploy-42", body).want(t, 201, "first call")
			if first.hdr.Get("Idempotent-Replayed") != "" {
				t.Fatalf("first call says replayed")
			}
			n := f.count()
			again := post("deploy-42", body).want(t, 201, "replay")
			if again.hdr.Get("Idempotent-Replayed") != "true" || again.obj["id"] != first.obj["id"] {
				t.Fatalf("replay: header %q id %v, want true and %v", again.hdr.Get("Idempotent-Replayed"), again.obj["id"], first.obj["id"])
			}
			// The same parameters as a form are the same request.
			r := trigCurl(t, "-X", "POST", "-H", "Idempotency-Key: deploy-42", "-F", "token="+f.token, "-F", "ref=main", "-F", "variables[A]=1", api+"/trigger/pipeline").want(t, 201, "curl replay")
			if r.obj["id"] != first.obj["id"] {
				t.Fatalf("form replay made pipeline %v, want %v", r.obj["id"], first.obj["id"])
			}
			for _, other := range []string{
				`{"token":"` + f.token + `","ref":"main","variables":{"A":"2"}}`,
				`{"token":"` + f.token + `","ref":"release-1.2","variables":{"A":"1"}}`,
			} {
				r := post("deploy-42", other).want(t, 422, "same key, other parameters")
				if r.obj["message"] != "422 Unprocessable Entity - Idempotency-Key was already used with other parameters" {
					t.Fatalf("422 body: %s", r.raw)
				}
			}
			post(strings.Repeat("k", 256), body).want(t, 400, "key too long")
			post("with space", body).want(t, 400, "key with a space")
			if got := f.count(); got != n {
				t.Fatalf("replays and refusals created pipelines: %d -> %d", n, got)
			}

			// Concurrent duplicates: exactly one pipeline.
			var wg sync.WaitGroup
			ids := make([]any, 8)
			codes := make([]int, 8)
			for i := range ids {
				wg.Go(func() {
					req, _ := http.NewRequest("POST", api+"/trigger/pipeline", strings.NewReader(`{"token":"`+f.token+`","ref":"main"}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", "race")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					defer resp.Body.Close()
					var o map[string]any
					json.NewDecoder(resp.Body).Decode(&o)
					codes[i], ids[i] = resp.StatusCode, o["id"]
				})
			}
			wg.Wait()
			for i := range ids {
				if codes[i] != 201 || ids[i] != ids[0] {
					t.Fatalf("concurrent duplicates: codes %v ids %v, want all 201 with one id", codes, ids)
				}
			}
			if got := f.count(); got != n+1 {
				t.Fatalf("8 concurrent duplicates created %d pipelines, want 1", got-n)
			}

			// POST /pipeline: the user's own keys.
			var p1, p2 map[string]any
			call := func(body any, out any) (int, http.Header) {
				req, _ := http.NewRequest("POST", api+"/pipeline", strings.NewReader(body.(string)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("PRIVATE-TOKEN", rootToken)
				req.Header.Set("Idempotency-Key", "deploy-42")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				json.NewDecoder(resp.Body).Decode(out)
				return resp.StatusCode, resp.Header
			}
			if code, _ := call(`{"ref":"main"}`, &p1); code != 201 || p1["id"] == first.obj["id"] {
				t.Fatalf("POST /pipeline with a key another caller used: %d %v (keys are per caller)", code, p1)
			}
			if code, hdr := call(`{"ref":"main"}`, &p2); code != 201 || p2["id"] != p1["id"] || hdr.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("POST /pipeline replay: %d %v %v", code, p2, hdr)
			}
			var e map[string]any
			if code, _ := call(`{"ref":"main","variables":[{"key":"X","value":"y"}]}`, &e); code != 422 {
				t.Fatalf("POST /pipeline same key, other variables: %d %v", code, e)
			}

			// Durable: a restarted server still replays.
			n = f.count()
			s.stop()
			s.start()
			again = post("deploy-42", body).want(t, 201, "replay after restart")
			if again.obj["id"] != first.obj["id"] || again.hdr.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("after restart: %s", again.raw)
			}
			if got := f.count(); got != n {
				t.Fatalf("replay after restart created a pipeline")
			}
		})
	}
}

const waitCI = `stages: [build, deploy]
build:
  stage: build
  script:
    - echo "VERSION=1.2.$CI_PIPELINE_IID" > build.env
    - echo "IMAGE=registry.example/app" >> build.env
  artifacts:
    reports:
      dotenv: build.env
deploy:
  stage: deploy
  script:
    - echo "URL=https://deploy.example/$CI_COMMIT_SHORT_SHA" > deploy.env
    - echo "IMAGE=registry.example/app:final" >> deploy.env
  artifacts:
    reports:
      dotenv: deploy.env
slow:
  stage: deploy
  rules:
    - if: $SLOW == "yes"
  script: sleep 20
`

// newWaitProject makes grp/waiter with waitCI and a trigger token.
func newWaitProject(t *testing.T, s *server) (id, token string) {
	var group, p, tr map[string]any
	s.call("POST", "/api/v4/groups", map[string]any{"name": "W", "path": "w"}, &group)
	s.call("POST", "/api/v4/projects", url.Values{"name": {"Waiter"}, "path": {"waiter"}, "namespace_id": {jsonID(group["id"])}}, &p)
	id = jsonID(p["id"])
	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": waitCI})
	git(t, w, "push", "-q", s.authURL("w/waiter"), "main")
	if code, _ := s.call("POST", "/api/v4/projects/"+id+"/triggers", url.Values{"description": {"wait"}}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	return id, tr["token"].(string)
}

// TestTriggerWait: wait= holds the call until the pipeline finishes and
// answers with its final state and outputs (dotenv reports, later jobs
// winning); when the time is up, 202 with Location; bad or too long waits
// are 400s that create nothing; kiln trigger --wait prints the outputs.
func TestTriggerWait(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			id, token := newWaitProject(t, s)
			api := s.URL + "/api/v4/projects/" + id
			r := trigCurl(t, "-X", "POST", "-F", "token="+token, "-F", "ref=main", "-F", "wait=120", api+"/trigger/pipeline")
			if r.code == 202 {
				t.Skipf("no runner finished the pipeline within 120s: %s", r.raw)
			}
			r.want(t, 201, "wait until finished")
			out, _ := r.obj["outputs"].(map[string]any)
			if r.obj["status"] != "success" || !strings.HasPrefix(out["VERSION"].(string), "1.2.") || out["IMAGE"] != "registry.example/app:final" || !strings.HasPrefix(out["URL"].(string), "https://deploy.example/") {
				t.Fatalf("final answer: %s", r.raw)
			}
			// Time up: 202, Location names the pipeline in the API.
			r = trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main", "variables[SLOW]", "yes", "wait", "1s").want(t, 202, "time up")
			loc := r.hdr.Get("Location")
			if loc != s.URL+"/api/v4/projects/"+id+"/pipelines/"+jsonID(r.obj["id"]) || r.obj["status"] == "success" {
				t.Fatalf("202: Location %q, body %s", loc, r.raw)
			}
			n := len(s.trigPipelinesOf(id, "per_page=100"))
			for _, c := range []struct{ wait, msg string }{
				{"601", "wait must be between 0 and 600 seconds"},
				{"11m", "wait must be between 0 and 600 seconds"},
				{"-5s", "wait is invalid"},
				{"soon", "wait is invalid"},
			} {
				r := trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main", "wait", c.wait).want(t, 400, "wait="+c.wait)
				if r.obj["error"] != c.msg {
					t.Fatalf("wait=%s: %s, want %q", c.wait, r.raw, c.msg)
				}
			}
			if got := len(s.trigPipelinesOf(id, "per_page=100")); got != n {
				t.Fatalf("refused waits created pipelines: %d -> %d", n, got)
			}
			// kiln trigger --wait prints the outputs.
			cmd := exec.Command(kilnBin, "trigger", "--url", s.URL, "--project", "w/waiter", "--token", token, "--ref", "main", "--wait", "--timeout", "120s")
			b, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(b), "output IMAGE=registry.example/app:final\n") || !strings.Contains(string(b), "output VERSION=1.2.") ||
				!strings.Contains(string(b), "build: success") || !strings.Contains(string(b), " success\n") {
				t.Fatalf("kiln trigger --wait: %v\n%s", err, b)
			}
		})
	}
}

// TestTriggerWaitCountsAsLongLived: a waiting trigger call holds one of the
// long-lived request slots; past the per-address cap it is a 429 before
// anything is created.
func TestTriggerWaitCountsAsLongLived(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0", "--max-streams-per-client", "2")
	s.start()
	id, token := newWaitProject(t, s)
	api := s.URL + "/api/v4/projects/" + id
	base := 0
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() {
			codes[i] = trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main", "wait", "8").code
		})
	}
	// Both waiting calls have created their pipelines (and hold their slots).
	if !trigWaitFor(5*time.Second, func() bool { return len(s.trigPipelinesOf(id, "source=trigger&per_page=100")) == base+2 }) {
		t.Fatalf("waiting calls did not create their pipelines")
	}
	r := trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main", "wait", "8").want(t, 429, "third waiting call")
	if r.obj["message"] != "429 Too Many Requests - too many open streams from this address or in total, retry later" || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("429: %s %v", r.raw, r.hdr)
	}
	// A call that does not wait is not long-lived.
	trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main").want(t, 201, "call without wait")
	wg.Wait()
	if codes[0] != 202 || codes[1] != 202 {
		t.Fatalf("waiting calls: %v, want 202 (nothing runs)", codes)
	}
	if got := len(s.trigPipelinesOf(id, "source=trigger&per_page=100")) - base; got != 3 {
		t.Fatalf("%d pipelines, want 3 (the refused call creates none)", got)
	}
	// Slots are given back: waiting works again.
	trigForm(t, api+"/trigger/pipeline", "token", token, "ref", "main", "wait", "1").want(t, 202, "after the others ended")
}

// TestTriggerDryRun: dry_run=true answers 200 with what would run (stages,
// jobs, when, the deciding rule, variable names without values) on the
// trigger API and POST /pipeline, and creates nothing; refusals are the
// same as a real call's.
func TestTriggerDryRun(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			before := f.count()
			r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", "-F", "variables[UPLOAD_TO_S3]=true",
				"-F", "variables[SECRET_THING]=hunter2", "-F", "dry_run=true", api+"/trigger/pipeline").want(t, 200, "trigger dry_run")
			if strings.Contains(r.raw, "hunter2") {
				t.Fatalf("preview shows a variable value: %s", r.raw)
			}
			o := r.obj
			if o["dry_run"] != true || o["ref"] != "main" || o["source"] != "trigger" || o["protected"] != true || o["sha"] == nil {
				t.Fatalf("preview: %s", r.raw)
			}
			if st := fmt.Sprint(o["stages"]); st != "[build test deploy]" {
				t.Fatalf("stages %s", st)
			}
			jobs := map[string]map[string]any{}
			for _, j := range o["jobs"].([]any) {
				jm := j.(map[string]any)
				jobs[jm["name"].(string)] = jm
			}
			if len(jobs) != 3 || jobs["build"]["when"] != "on_success" || jobs["payload"]["rule"] != `rules[0]: if: $CI_PIPELINE_SOURCE == "trigger"` ||
				jobs["upload"]["rule"] != `rules[0]: if: $UPLOAD_TO_S3 == "true"` || jobs["upload"]["stage"] != "deploy" {
				t.Fatalf("jobs: %v", jobs)
			}
			vars := fmt.Sprint(o["variables"].(map[string]any)["pipeline"])
			if !strings.Contains(vars, "UPLOAD_TO_S3") || !strings.Contains(vars, "SECRET_THING") || !strings.Contains(vars, "TRIGGER_PAYLOAD") {
				t.Fatalf("variable names: %s", vars)
			}
			// POST /pipeline, JSON boolean.
			var pv map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main", "dry_run": true}, &pv); code != 200 || pv["source"] != "api" || len(pv["jobs"].([]any)) != 1 {
				t.Fatalf("POST /pipeline dry_run: %d %v", code, pv)
			}
			// Refusals are the real call's, and nothing is created either way.
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "broken", "dry_run", "true").want(t, 400, "broken YAML")
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "nope", "dry_run", "true").want(t, 400, "unknown ref")
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "dry_run", "maybe").want(t, 400, "bad dry_run")
			trigForm(t, api+"/trigger/pipeline", "token", "glptt-"+strings.Repeat("0", 40), "ref", "main", "dry_run", "true").want(t, 404, "bad token")
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main", "dry_run": true, "sha": strings.Repeat("ab", 20)}, nil); code != 400 {
				t.Fatalf("POST /pipeline dry_run unknown sha: %d", code)
			}
			if n := f.count(); n != before {
				t.Fatalf("dry runs created pipelines: %d -> %d", before, n)
			}
		})
	}
}

// TestTriggerTokenPolicy: a token's allowed networks and refs are
// enforced (403 with nothing created, the precise reason in the
// deliveries log), set on creation and by PUT, validated.
func TestTriggerTokenPolicy(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			var tr map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", map[string]any{"description": "release only",
				"allowed_refs": []string{"release-*"}, "allowed_cidrs": []string{"10.0.0.0/8", "192.168.1.7"}}, &tr); code != 201 {
				t.Fatalf("create: %d %v", code, tr)
			}
			if fmt.Sprint(tr["allowed_refs"]) != "[release-*]" || fmt.Sprint(tr["allowed_cidrs"]) != "[10.0.0.0/8 192.168.1.7/32]" {
				t.Fatalf("policy fields: %v", tr)
			}
			tok, tid := tr["token"].(string), jsonID(tr["id"])
			for _, bad := range []map[string]any{
				{"description": "x", "allowed_cidrs": []string{"10.0.0.0/33"}},
				{"description": "x", "allowed_cidrs": "not-a-network"},
				{"description": "x", "allowed_refs": []any{1}},
			} {
				if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/triggers", bad, nil); code != 400 {
					t.Fatalf("create with %v: %d, want 400", bad, code)
				}
			}
			var list []map[string]any
			if s.call("GET", "/api/v4/projects/"+f.appID+"/triggers", nil, &list); len(list) != 2 {
				t.Fatalf("refused creations made tokens: %d", len(list))
			}
			before := f.count()
			r := trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "release-1.2").want(t, 403, "refused address")
			if r.obj["message"] != "403 Forbidden - this trigger token is not accepted from 127.0.0.1" {
				t.Fatalf("403 body: %s", r.raw)
			}
			if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+tid, url.Values{"allowed_cidrs": {"127.0.0.0/8"}}, &tr); code != 200 || fmt.Sprint(tr["allowed_refs"]) != "[release-*]" {
				t.Fatalf("PUT: %d %v", code, tr)
			}
			r = trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 403, "refused ref")
			if r.obj["message"] != "403 Forbidden - this trigger token may not run pipelines for ref 'main'" {
				t.Fatalf("403 body: %s", r.raw)
			}
			if n := f.count(); n != before {
				t.Fatalf("refused calls created pipelines")
			}
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "release-1.2").want(t, 201, "allowed ref and address")
			var dl []map[string]any
			s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=100", nil, &dl)
			reasons := ""
			for _, d := range dl {
				reasons += d["reason"].(string) + "\n"
			}
			for _, want := range []string{
				"token policy: source address 127.0.0.1 is not in the allowed networks 10.0.0.0/8, 192.168.1.7/32",
				"token policy: ref 'main' matches none of the allowed refs release-*",
			} {
				if !strings.Contains(reasons, want) {
					t.Fatalf("deliveries lack %q:\n%s", want, reasons)
				}
			}
			// An empty list lifts the restriction.
			if code, _ := s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+tid, map[string]any{"allowed_refs": []string{}}, &tr); code != 200 || fmt.Sprint(tr["allowed_refs"]) != "[]" {
				t.Fatalf("PUT empty: %d %v", code, tr)
			}
			trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main").want(t, 201, "no ref restriction")
		})
	}
}

// TestTriggerRotation: rotate issues a new token with the old one's
// description and policy; the old token keeps working for the overlap and
// is refused after it.
func TestTriggerRotation(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			s.call("PUT", "/api/v4/projects/"+f.appID+"/triggers/"+f.trigID, map[string]any{"allowed_refs": []string{"main"}}, nil)
			rot := "/api/v4/projects/" + f.appID + "/triggers/" + f.trigID + "/rotate"
			for _, bad := range []string{"soon", "-1", "721h"} {
				if code, _ := s.call("POST", rot, url.Values{"overlap": {bad}}, nil); code != 400 {
					t.Fatalf("overlap=%s: %d, want 400", bad, code)
				}
			}
			var nt map[string]any
			if code, _ := s.call("POST", rot, url.Values{"overlap": {"3"}}, &nt); code != 201 {
				t.Fatalf("rotate: %d %v", code, nt)
			}
			newTok := nt["token"].(string)
			if newTok == f.token || !strings.HasPrefix(newTok, "glptt-") || nt["description"] != "nightly" || fmt.Sprint(nt["allowed_refs"]) != "[main]" {
				t.Fatalf("rotated token: %v", nt)
			}
			probe := func(tok string) int {
				return trigForm(t, api+"/trigger/pipeline", "token", tok, "ref", "main", "dry_run", "true").code
			}
			if a, b := probe(f.token), probe(newTok); a != 200 || b != 200 {
				t.Fatalf("during the overlap: old %d, new %d; want both 200", a, b)
			}
			if !trigWaitFor(15*time.Second, func() bool { return probe(f.token) == 404 }) {
				t.Fatalf("old token still accepted after the overlap")
			}
			if b := probe(newTok); b != 200 {
				t.Fatalf("new token after the overlap: %d", b)
			}
			// overlap=0 ends the old token now.
			var nt2 map[string]any
			s.call("POST", "/api/v4/projects/"+f.appID+"/triggers/"+jsonID(nt["id"])+"/rotate", url.Values{"overlap": {"0"}}, &nt2)
			if probe(newTok) != 404 || probe(nt2["token"].(string)) != 200 {
				t.Fatalf("overlap=0: old still accepted or new refused")
			}
		})
	}
}
