package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// multiStageCI exercises stage order, needs, an allowed failure, an
// on_failure job that must not run, a manual job, and variables from every
// level of precedence.
const multiStageCI = `
stages: [test, build, deploy]
variables:
  GREETING: global
  OVERRIDDEN: global
unit:
  stage: test
  variables:
    OVERRIDDEN: job
  script:
    - echo "unit greeting=$GREETING overridden=$OVERRIDDEN api=$API_VAR project=$PROJECT_VAR source=$CI_PIPELINE_SOURCE"
lint:
  stage: test
  script: exit 3
  allow_failure: true
build:
  stage: build
  needs: [unit]
  script: echo "build stage=$CI_JOB_STAGE"
deploy:
  stage: deploy
  script: echo deploy
  when: manual
notify_failure:
  stage: deploy
  script: echo failure
  when: on_failure
report:
  stage: deploy
  script: echo report
`

// newUser creates a user with a personal access token and returns its id and token.
func (s *server) newUser(name string) (int64, string) {
	s.t.Helper()
	var u map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": name, "name": name, "email": name + "@example.com", "password": "password-" + name}, &u); code != 201 {
		s.t.Fatalf("create user %s: %d %v", name, code, u)
	}
	id := int64(u["id"].(float64))
	var tok map[string]any
	if code, _ := s.call("POST", fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", id), map[string]any{"name": "t", "scopes": []string{"api"}}, &tok); code != 201 {
		s.t.Fatalf("create token for %s: %d %v", name, code, tok)
	}
	return id, tok["token"].(string)
}

// waitFor polls until cond holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// hasRunners reports whether the server has runners that will pick up jobs
// (the built-in runners of `kiln server`); without them jobs stay pending
// and only creation-time behaviour can be checked.
func (s *server) hasRunners() bool {
	var runners any
	code, _ := s.call("GET", "/api/v4/runners/all", nil, &runners)
	l, _ := runners.([]any)
	return code == 200 && len(l) > 0
}

func jobsByName(jobs []map[string]any) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, j := range jobs {
		m[j["name"].(string)] = j
	}
	return m
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return tm
}

func TestPipelinesEndToEnd(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()

			var proj map[string]any
			if code, _ := s.call("POST", "/api/v4/projects", map[string]any{"name": "ci", "path": "ci"}, &proj); code != 201 {
				t.Fatalf("create project: %d %v", code, proj)
			}
			pid := jsonID(proj["id"])
			base := "/api/v4/projects/" + pid
			var v map[string]any
			if code, _ := s.call("POST", base+"/variables", map[string]any{"key": "PROJECT_VAR", "value": "from-project", "masked": false}, &v); code != 201 {
				t.Fatalf("create variable: %d %v", code, v)
			}

			work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": multiStageCI})
			git(t, work, "push", "-q", s.authURL("root/ci"), "main")

			// The push created a pipeline with every job, the first stage pending.
			var pls []map[string]any
			if !waitFor(t, 10*time.Second, "push pipeline", func() bool {
				s.call("GET", base+"/pipelines?source=push", nil, &pls)
				return len(pls) == 1
			}) {
				t.Fatalf("no push pipeline: %v\n%s", pls, s.Log())
			}
			pushID := jsonID(pls[0]["id"])
			var jobs []map[string]any
			s.call("GET", base+"/pipelines/"+pushID+"/jobs?per_page=100", nil, &jobs)
			byName := jobsByName(jobs)
			if len(jobs) != 6 {
				t.Fatalf("push pipeline jobs: %v", jobs)
			}
			runners := s.hasRunners()
			if !runners {
				for name, want := range map[string]string{"unit": "pending", "lint": "pending", "build": "created", "deploy": "created", "notify_failure": "created", "report": "created"} {
					if got := byName[name]["status"]; got != want {
						t.Errorf("%s: %v, want %s", name, got, want)
					}
				}
			}
			for name, stage := range map[string]string{"unit": "test", "build": "build", "deploy": "deploy", "report": "deploy"} {
				if byName[name]["stage"] != stage {
					t.Errorf("%s stage %v, want %s", name, byName[name]["stage"], stage)
				}
			}

			// An API pipeline with a pipeline variable.
			var pl map[string]any
			code, _ := s.call("POST", base+"/pipeline", map[string]any{"ref": "main", "variables": []any{map[string]any{"key": "API_VAR", "value": "from-api"}}}, &pl)
			if code != 201 || pl["source"] != "api" {
				t.Fatalf("create pipeline: %d %v", code, pl)
			}
			apiID := jsonID(pl["id"])

			// Hostile and unauthorised requests.
			_, strangerTok := s.newUser("stranger")
			reporterID, reporterTok := s.newUser("reporter")
			if code, _ := s.call("POST", base+"/members", map[string]any{"user_id": reporterID, "access_level": 20}, nil); code != 201 {
				t.Fatalf("add reporter: %d", code)
			}
			var e map[string]any
			if code, _ := s.callAs(strangerTok, "GET", base+"/pipelines/"+apiID, nil, &e); code != 404 {
				t.Errorf("stranger reads private pipeline: %d %v", code, e)
			}
			if code, _ := s.callAs(reporterTok, "POST", base+"/pipelines/"+apiID+"/cancel", nil, &e); code != 403 {
				t.Errorf("reporter cancels: %d %v", code, e)
			}
			if code, _ := s.callAs(reporterTok, "GET", base+"/pipelines/"+apiID, nil, &e); code != 200 {
				t.Errorf("reporter reads: %d %v", code, e)
			}
			if code, _ := s.call("POST", base+"/pipeline", `{"ref": "main", "variables": [`, &e); code != 400 {
				t.Errorf("malformed JSON: %d %v", code, e)
			}
			if code, _ := s.call("POST", base+"/pipeline", map[string]any{"ref": "nope"}, &e); code != 400 || fmt.Sprint(e["message"]) != "map[base:[Reference not found]]" {
				t.Errorf("unknown ref: %d %v", code, e)
			}
			if code, _ := s.call("POST", base+"/pipeline", `{"ref": "`+strings.Repeat("x", 2<<20)+`"}`, &e); code != 413 {
				t.Errorf("huge body: %d", code)
			}
			if code, _ := s.call("GET", base+"/pipelines/999999", nil, &e); code != 404 {
				t.Errorf("unknown pipeline: %d", code)
			}
			if code, _ := s.call("GET", base+"/pipelines?ref=main'%20OR%20'1'='1", nil, &pls); code != 200 || len(pls) != 0 {
				t.Errorf("SQL-looking ref: %d %v", code, pls)
			}

			if !runners {
				t.Log("no runners on this server yet: checked pipeline creation only")
				return
			}
			// With runners, the API pipeline runs to completion in order.
			if !waitFor(t, 90*time.Second, "pipeline done", func() bool {
				s.call("GET", base+"/pipelines/"+apiID, nil, &pl)
				return pl["status"] == "success" || pl["status"] == "failed" || pl["status"] == "canceled"
			}) {
				s.call("GET", base+"/pipelines/"+apiID+"/jobs", nil, &jobs)
				t.Fatalf("pipeline did not finish: %v\njobs %v", pl, jobs)
			}
			s.call("GET", base+"/pipelines/"+apiID+"/jobs?per_page=100", nil, &jobs)
			byName = jobsByName(jobs)
			for name, want := range map[string]string{"unit": "success", "lint": "failed", "build": "success", "deploy": "manual", "notify_failure": "skipped", "report": "success"} {
				if got := byName[name]["status"]; got != want {
					t.Errorf("%s: %v, want %s", name, got, want)
				}
			}
			if pl["status"] != "success" || pl["detailed_status"].(map[string]any)["group"] != "success-with-warnings" {
				t.Errorf("pipeline %v %v", pl["status"], pl["detailed_status"])
			}
			if byName["lint"]["failure_reason"] != "script_failure" {
				t.Errorf("lint failure_reason %v", byName["lint"]["failure_reason"])
			}
			if !parseTime(t, byName["build"]["started_at"]).After(parseTime(t, byName["unit"]["finished_at"]).Add(-time.Millisecond)) {
				t.Errorf("build started before unit finished")
			}
			for _, dep := range []string{"unit", "lint", "build"} {
				if parseTime(t, byName["report"]["started_at"]).Before(parseTime(t, byName[dep]["finished_at"]).Add(-time.Millisecond)) {
					t.Errorf("report started before %s finished", dep)
				}
			}
			// Variables reached the job with GitLab's precedence.
			trace := s.trace(base, byName["unit"]["id"])
			if !strings.Contains(trace, "unit greeting=global overridden=job api=from-api project=from-project source=api") {
				t.Errorf("unit trace lacks the expected variables:\n%s", trace)
			}
			// Play the manual job; the pipeline follows it.
			var played map[string]any
			if code, _ := s.call("POST", base+"/jobs/"+jsonID(byName["deploy"]["id"])+"/play", nil, &played); code != 201 {
				t.Fatalf("play: %d %v", code, played)
			}
			if !waitFor(t, 60*time.Second, "deploy", func() bool {
				s.call("GET", base+"/jobs/"+jsonID(byName["deploy"]["id"]), nil, &played)
				return played["status"] == "success"
			}) {
				t.Fatalf("deploy did not succeed: %v", played)
			}
		})
	}
}

// trace reads a job's log ("" when it cannot be read).
func (s *server) trace(base string, id any) string {
	req, _ := http.NewRequest("GET", s.URL+base+"/jobs/"+jsonID(id)+"/trace", nil)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
