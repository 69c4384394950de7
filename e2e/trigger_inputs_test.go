package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

const inputsCI = `spec:
  inputs:
    env:
      options: [staging, production]
    replicas:
      type: number
      default: 1
    version:
      regex: ^v\d+\.\d+$
      default: v0.1
---
deploy:
  script:
    - echo "deploying $[[ inputs.version ]] to $[[ inputs.env ]] x$[[ inputs.replicas ]]"
`

// TestTriggerInputs: typed spec:inputs through the trigger API (form fields
// and a JSON object) and POST /pipeline: a wrong type, an unknown input, a
// regex miss, an option miss, a missing required input and an input flood
// are 400s naming the input and the rule, and create nothing; dry_run shows
// the resolved inputs; a good input reaches the job's script.
func TestTriggerInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			var group, p, tr map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Typed"}, "path": {"typed"}, "namespace_id": {jsonID(group["id"])}}, &p)
			id := jsonID(p["id"])
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			git(t, w, "push", "-q", s.authURL("in/typed"), "main")
			if code, _ := s.call("POST", "/api/v4/projects/"+id+"/triggers", url.Values{"description": {"inputs"}}, &tr); code != 201 {
				t.Fatalf("create trigger: %d %v", code, tr)
			}
			token := tr["token"].(string)
			api := s.URL + "/api/v4/projects/" + id
			count := func() int { return len(s.trigPipelinesOf(id, "per_page=100")) }
			// The push made a failed pipeline (env is required): wait for it
			// so that it is not counted as one of the refused calls'.
			if !trigWaitFor(20*time.Second, func() bool { return count() == 1 }) {
				t.Fatalf("push pipeline: %v", s.trigPipelinesOf(id, "per_page=100"))
			}
			before := count()

			flood := []string{"token", token, "ref", "main", "inputs[env]", "staging"}
			floodJSON := map[string]any{"env": "staging"}
			for i := 0; i < 21; i++ {
				flood = append(flood, fmt.Sprintf("inputs[x%d]", i), "1")
				floodJSON[fmt.Sprintf("x%d", i)] = "1"
			}
			for _, tc := range []struct {
				name   string
				fields []string
				want   string
			}{
				{"wrong type", []string{"inputs[env]", "staging", "inputs[replicas]", "many"}, "`replicas` input: provided value is not a number"},
				{"unknown", []string{"inputs[env]", "staging", "inputs[bogus]", "1"}, "unknown input arguments: bogus"},
				{"regex miss", []string{"inputs[env]", "staging", "inputs[version]", "1.0; rm -rf /"}, "`version` input: provided value does not match required RegEx pattern"},
				{"option miss", []string{"inputs[env]", "prod"}, "`env` input: `prod` cannot be used because it is not in the list of allowed options"},
				{"required", nil, "`env` input: required value has not been provided"},
				{"flood", flood[4:], "too many inputs: 22 given, at most 20 allowed"},
			} {
				for _, dry := range []string{"false", "true"} {
					r := trigForm(t, api+"/trigger/pipeline", append([]string{"token", token, "ref", "main", "dry_run", dry}, tc.fields...)...).want(t, 400, tc.name)
					if base := fmt.Sprint(r.obj["message"].(map[string]any)["base"]); !strings.Contains(base, tc.want) {
						t.Fatalf("%s: %s, want %q", tc.name, r.raw, tc.want)
					}
				}
			}
			// JSON object (GitLab's RunPipelineTriggerOptions.Inputs): a JSON
			// string for a number input is the wrong type.
			jsonCall := func(u string, body map[string]any, hdr map[string]string) trigResp {
				b, _ := json.Marshal(body)
				return trigDo(t, "POST", u, "application/json", bytes.NewReader(b), hdr)
			}
			r := jsonCall(api+"/trigger/pipeline", map[string]any{"token": token, "ref": "main", "inputs": map[string]any{"env": "staging", "replicas": true}}, nil).want(t, 400, "JSON wrong type")
			if !strings.Contains(r.raw, "`replicas` input: provided value is not a number") {
				t.Fatalf("JSON wrong type: %s", r.raw)
			}
			jsonCall(api+"/trigger/pipeline", map[string]any{"token": token, "ref": "main", "inputs": floodJSON}, nil).want(t, 400, "JSON flood")
			jsonCall(api+"/trigger/pipeline", map[string]any{"token": token, "ref": "main", "inputs": "env=staging"}, nil).want(t, 400, "inputs not an object")
			// POST /pipeline.
			hdr := map[string]string{"PRIVATE-TOKEN": rootToken}
			r = jsonCall(api+"/pipeline", map[string]any{"ref": "main", "inputs": map[string]any{"env": "staging", "version": "x"}}, hdr).want(t, 400, "POST /pipeline regex miss")
			if !strings.Contains(r.raw, "`version` input: provided value does not match required RegEx pattern") {
				t.Fatalf("POST /pipeline regex miss: %s", r.raw)
			}
			jsonCall(api+"/pipeline", map[string]any{"ref": "main", "inputs": map[string]any{"env": "staging", "nope": 1}}, hdr).want(t, 400, "POST /pipeline unknown")
			jsonCall(api+"/pipeline", map[string]any{"ref": "main", "inputs": []string{"env"}}, hdr).want(t, 400, "POST /pipeline inputs not an object")
			if n := count(); n != before {
				t.Fatalf("refused inputs created pipelines: %d -> %d", before, n)
			}

			// dry_run shows the resolved inputs, typed, defaults included.
			r = jsonCall(api+"/pipeline", map[string]any{"ref": "main", "dry_run": true, "inputs": map[string]any{"env": "production", "replicas": 3}}, hdr).want(t, 200, "POST /pipeline dry_run")
			if in := r.obj["inputs"].(map[string]any); in["env"] != "production" || in["replicas"] != float64(3) || in["version"] != "v0.1" {
				t.Fatalf("dry_run inputs: %s", r.raw)
			}

			// A good input reaches the job's script (form fields, as curl -F).
			r = trigCurl(t, "-X", "POST", "-F", "token="+token, "-F", "ref=main", "-F", "inputs[env]=production",
				"-F", "inputs[version]=v2.5", "-F", "inputs[replicas]=3", api+"/trigger/pipeline").want(t, 201, "good inputs")
			plID := r.obj["id"]
			if st := s.trigWaitPipeline(id, plID, 120*time.Second); st != "success" {
				t.Skipf("pipeline did not finish within 120s (%s)", st)
			}
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(plID)+"/jobs", nil, &jobs)
			if len(jobs) != 1 {
				t.Fatalf("jobs: %v", jobs)
			}
			if log := s.trace("/api/v4/projects/"+id, jobs[0]["id"]); !strings.Contains(log, "deploying v2.5 to production x3") {
				t.Fatalf("job log does not show the inputs:\n%s", log)
			}
			// POST /pipeline with a JSON object creates too.
			var pl map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+id+"/pipeline", map[string]any{"ref": "main", "inputs": map[string]any{"env": "staging"}}, &pl); code != 201 {
				t.Fatalf("POST /pipeline good inputs: %d %v", code, pl)
			}
		})
	}
}

// TestPushOptionInputs: `git push -o ci.input=NAME=VALUE` gives a push
// pipeline its inputs (text converted to the input's type); a push whose
// inputs break the spec gets a failed pipeline whose yaml_errors name the
// input and the rule, as a bad file does (a push cannot be answered 400).
func TestPushOptionInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			var group, p map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Typed"}, "path": {"typed"}, "namespace_id": {jsonID(group["id"])}}, &p)
			id := jsonID(p["id"])
			pipelines := func() []map[string]any { return s.trigPipelinesOf(id, "per_page=100") }
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			// No inputs: env is required.
			git(t, w, "push", "-q", s.authURL("in/typed"), "main")
			if !trigWaitFor(20*time.Second, func() bool { return len(pipelines()) == 1 }) {
				t.Fatalf("no pipeline for the push: %v", pipelines())
			}
			var pl map[string]any
			s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(pipelines()[0]["id"]), nil, &pl)
			if pl["status"] != "failed" || !strings.Contains(fmt.Sprint(pl["yaml_errors"]), "`env` input: required value has not been provided") {
				t.Fatalf("push without the required input: %v", pl)
			}
			// A regex miss by push option fails the same way.
			git(t, w, "commit", "-q", "--allow-empty", "-m", "bad version")
			git(t, w, "push", "-q", "-o", "ci.input=env=staging", "-o", "ci.input=version=latest", s.authURL("in/typed"), "main")
			if !trigWaitFor(20*time.Second, func() bool { return len(pipelines()) == 2 }) {
				t.Fatalf("no pipeline for the second push: %v", pipelines())
			}
			s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(pipelines()[0]["id"]), nil, &pl)
			if pl["status"] != "failed" || !strings.Contains(fmt.Sprint(pl["yaml_errors"]), "`version` input: provided value does not match required RegEx pattern") {
				t.Fatalf("push with a regex miss: %v", pl)
			}
			// Good inputs reach the job.
			git(t, w, "commit", "-q", "--allow-empty", "-m", "deploy")
			git(t, w, "push", "-q", "-o", "ci.input=env=production", "-o", "ci.input=replicas=4", s.authURL("in/typed"), "main")
			if !trigWaitFor(20*time.Second, func() bool { return len(pipelines()) == 3 }) {
				t.Fatalf("no pipeline for the third push: %v", pipelines())
			}
			plID := pipelines()[0]["id"]
			if st := s.trigWaitPipeline(id, plID, 120*time.Second); st != "success" {
				t.Skipf("pipeline did not finish within 120s (%s)", st)
			}
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+id+"/pipelines/"+jsonID(plID)+"/jobs", nil, &jobs)
			if len(jobs) != 1 {
				t.Fatalf("jobs: %v", jobs)
			}
			if log := s.trace("/api/v4/projects/"+id, jobs[0]["id"]); !strings.Contains(log, "deploying v0.1 to production x4") {
				t.Fatalf("job log does not show the push inputs:\n%s", log)
			}
		})
	}
}

// TestTriggerKeywordInputs: `trigger: inputs:` gives a multi-project
// downstream pipeline its inputs; inputs that break the downstream spec
// fail the bridge (downstream_pipeline_creation_failed, the message names
// the input) and create no downstream pipeline.
func TestTriggerKeywordInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			var group, up, down map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Up"}, "path": {"up"}, "namespace_id": {jsonID(group["id"])}}, &up)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Down"}, "path": {"down"}, "namespace_id": {jsonID(group["id"])}}, &down)
			upID, downID := jsonID(up["id"]), jsonID(down["id"])
			dw := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			git(t, dw, "push", "-q", s.authURL("in/down"), "main")
			// The downstream's own push fails (env is required).
			if !trigWaitFor(20*time.Second, func() bool { return len(s.trigPipelinesOf(downID, "per_page=100")) == 1 }) {
				t.Fatalf("downstream push pipeline: %v", s.trigPipelinesOf(downID, "per_page=100"))
			}
			upCI := "good:\n  trigger:\n    project: in/down\n    strategy: depend\n    inputs:\n      env: production\n      replicas: 2\n" +
				"bad:\n  trigger:\n    project: in/down\n    inputs:\n      env: prod\n"
			uw := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": upCI})
			git(t, uw, "push", "-q", s.authURL("in/up"), "main")
			if !trigWaitFor(20*time.Second, func() bool { return len(s.trigPipelinesOf(upID, "per_page=100")) == 1 }) {
				t.Fatalf("upstream pipeline: %v", s.trigPipelinesOf(upID, "per_page=100"))
			}
			upPl := s.trigPipelinesOf(upID, "per_page=100")[0]["id"]
			var bridges []map[string]any
			byName := map[string]map[string]any{}
			if !trigWaitFor(120*time.Second, func() bool {
				s.call("GET", "/api/v4/projects/"+upID+"/pipelines/"+jsonID(upPl)+"/bridges", nil, &bridges)
				for _, b := range bridges {
					byName[b["name"].(string)] = b
				}
				return len(bridges) == 2 && byName["bad"]["status"] == "failed" && (byName["good"]["status"] == "success" || byName["good"]["status"] == "failed")
			}) {
				t.Skipf("bridges did not finish within 120s: %v", bridges)
			}
			if byName["bad"]["failure_reason"] != "downstream_pipeline_creation_failed" {
				t.Fatalf("bad bridge: %v", byName["bad"])
			}
			if byName["good"]["status"] != "success" {
				t.Fatalf("good bridge: %v", byName["good"])
			}
			pls := s.trigPipelinesOf(downID, "source=pipeline&per_page=100")
			if len(pls) != 1 {
				t.Fatalf("downstream pipelines from bridges: %v (want only the good one)", pls)
			}
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+downID+"/pipelines/"+jsonID(pls[0]["id"])+"/jobs", nil, &jobs)
			if len(jobs) != 1 {
				t.Fatalf("downstream jobs: %v", jobs)
			}
			if log := s.trace("/api/v4/projects/"+downID, jobs[0]["id"]); !strings.Contains(log, "deploying v0.1 to production x2") {
				t.Fatalf("downstream job log does not show the inputs:\n%s", log)
			}
		})
	}
}

// TestScheduleInputs: a schedule's inputs (GitLab's [{name, value}] list)
// are stored, shown, and given to its pipelines; a malformed list is a
// 400 that changes nothing; an input that breaks the spec makes a run
// create no pipeline, with the message in last_error.
func TestScheduleInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			pid := schedProject(t, s, "typed")
			work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			git(t, work, "push", "-q", s.authURL("root/typed"), "main")
			base := "/api/v4/projects/" + pid + "/pipeline_schedules"
			for _, bad := range []any{"env=prod", []any{map[string]any{"value": "x"}}, []any{map[string]any{"name": "env"}},
				[]any{map[string]any{"name": "env", "value": "a"}, map[string]any{"name": "env", "value": "b"}}} {
				if code, _ := s.call("POST", base, map[string]any{"description": "x", "ref": "main", "cron": "0 1 * * *", "inputs": bad}, nil); code != 400 {
					t.Fatalf("inputs %v: %d, want 400", bad, code)
				}
			}
			var list []map[string]any
			if s.call("GET", base, nil, &list); len(list) != 0 {
				t.Fatalf("refused schedules were created: %v", list)
			}
			var sc map[string]any
			if code, _ := s.call("POST", base, map[string]any{"description": "nightly", "ref": "main", "cron": "0 1 * * *",
				"inputs": []any{map[string]any{"name": "env", "value": "production"}, map[string]any{"name": "replicas", "value": 5}}}, &sc); code != 201 {
				t.Fatalf("create: %d %v", code, sc)
			}
			if fmt.Sprint(sc["inputs"]) != "[map[name:env value:production] map[name:replicas value:5]]" {
				t.Fatalf("inputs shown: %v", sc["inputs"])
			}
			one := base + "/" + jsonID(sc["id"])
			if code, _ := s.call("POST", one+"/play", nil, nil); code != 201 {
				t.Fatalf("play: %d", code)
			}
			var got map[string]any
			if !trigWaitFor(20*time.Second, func() bool { s.call("GET", one, nil, &got); return got["last_pipeline"] != nil }) {
				t.Fatalf("no pipeline from play: %v", got)
			}
			plID := got["last_pipeline"].(map[string]any)["id"]
			if st := s.trigWaitPipeline(pid, plID, 120*time.Second); st != "success" {
				t.Skipf("pipeline did not finish within 120s (%s)", st)
			}
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(plID)+"/jobs", nil, &jobs)
			if len(jobs) != 1 {
				t.Fatalf("jobs: %v", jobs)
			}
			if log := s.trace("/api/v4/projects/"+pid, jobs[0]["id"]); !strings.Contains(log, "deploying v0.1 to production x5") {
				t.Fatalf("job log does not show the schedule's inputs:\n%s", log)
			}
			// A value that breaks the spec: the run creates nothing and says why.
			if code, _ := s.call("PUT", one, map[string]any{"inputs": []any{map[string]any{"name": "env", "value": "prod"}}}, nil); code != 200 {
				t.Fatalf("update inputs: %d", code)
			}
			before := len(s.trigPipelinesOf(pid, "source=schedule&per_page=100"))
			s.call("POST", one+"/play", nil, nil)
			if !trigWaitFor(20*time.Second, func() bool {
				s.call("GET", one, nil, &got)
				return strings.Contains(fmt.Sprint(got["last_error"]), "`env` input: `prod` cannot be used because it is not in the list of allowed options")
			}) {
				t.Fatalf("last_error after a bad input: %v", got)
			}
			if n := len(s.trigPipelinesOf(pid, "source=schedule&per_page=100")); n != before {
				t.Fatalf("a bad input created a pipeline: %d -> %d", before, n)
			}
		})
	}
}
