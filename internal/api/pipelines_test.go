package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

const testCI = `
stages: [test, build, deploy]
variables:
  GLOBAL: g
unit:
  stage: test
  script: echo unit
  coverage: '/cov (\d+)%/'
lint:
  stage: test
  script: exit 1
  allow_failure: true
build:
  stage: build
  script: echo build
  needs: [unit]
deploy:
  stage: deploy
  script: echo deploy
  when: manual
cleanup:
  stage: deploy
  script: echo cleanup
  when: on_failure
child:
  stage: deploy
  needs: []
  trigger:
    include: child.yml
`

func pipelineFiles() map[string]string {
	return map[string]string{".gitlab-ci.yml": testCI, "child.yml": "c:\n  script: echo child\n"}
}

// jobStatuses maps job names to statuses from a jobs API answer.
func jobStatuses(v any) map[string]string {
	m := map[string]string{}
	for _, j := range list(v) {
		m[obj(j)["name"].(string)] = obj(j)["status"].(string)
	}
	return m
}

func jobIDs(v any) map[string]int64 {
	m := map[string]int64{}
	for _, j := range list(v) {
		m[obj(j)["name"].(string)] = num(obj(j)["id"])
	}
	return m
}

// finish runs a job to the given result through the engine, as a runner would.
func (e *ciEnv) finish(jobID int64, result string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.st.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.AssignJob(ctx, jobID, 0, fmt.Sprintf("hash-%d", jobID))
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.engine.FinishJob(ctx, jobID, result, "", nil); err != nil {
		e.t.Fatal(err)
	}
}

func TestPipelineCreateGetList(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp"

	pl := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{
		"ref": "main", "variables": []any{map[string]any{"key": "API_VAR", "value": "one"}, map[string]any{"key": "F", "value": "x", "variable_type": "file"}}}))
	if pl["status"] != "pending" || pl["source"] != "api" || pl["ref"] != "main" || num(pl["iid"]) != 1 || pl["tag"] != false {
		t.Fatalf("created pipeline %v", pl)
	}
	for _, k := range []string{"id", "iid", "project_id", "sha", "before_sha", "yaml_errors", "user", "started_at", "finished_at", "committed_at",
		"duration", "queued_duration", "coverage", "detailed_status", "web_url", "created_at", "updated_at", "name"} {
		if _, ok := pl[k]; !ok {
			t.Errorf("pipeline JSON lacks %q", k)
		}
	}
	if ds := obj(pl["detailed_status"]); ds["group"] != "pending" || ds["icon"] != "status_pending" || !strings.HasSuffix(ds["details_path"].(string), fmt.Sprintf("/group/app/-/pipelines/%d", num(pl["id"]))) {
		t.Fatalf("detailed_status %v", ds)
	}
	if obj(pl["user"])["username"] != "maintainer" {
		t.Fatalf("user %v", pl["user"])
	}
	id := fmt.Sprint(num(pl["id"]))

	// Form-encoded variables (variables[][key]) work too.
	form := url.Values{"ref": {"main"}, "variables[][key]": {"A", "B"}, "variables[][value]": {"1", "2"}}
	pl2 := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", form))
	vars := list(e.expect(200, "maintainer", "GET", base+fmt.Sprintf("/pipelines/%d/variables", num(pl2["id"])), nil))
	if len(vars) != 2 || obj(vars[0])["key"] != "A" || obj(vars[0])["value"] != "1" || obj(vars[1])["value"] != "2" {
		t.Fatalf("form variables %v", vars)
	}

	vars = list(e.expect(200, "maintainer", "GET", base+"/pipelines/"+id+"/variables", nil))
	if len(vars) != 2 || obj(vars[0])["key"] != "API_VAR" || obj(vars[1])["variable_type"] != "file" {
		t.Fatalf("variables %v", vars)
	}
	// Pipeline variables are maintainer-only.
	e.expect(403, "developer", "GET", base+"/pipelines/"+id+"/variables", nil)

	got := obj(e.expect(200, "reporter", "GET", base+"/pipelines/"+id, nil))
	if got["id"] != pl["id"] || got["sha"] != pl["sha"] {
		t.Fatalf("get %v", got)
	}
	all := list(e.expect(200, "reporter", "GET", base+"/pipelines", nil))
	if len(all) != 2 || num(obj(all[0])["id"]) != num(pl2["id"]) {
		t.Fatalf("list %v", all)
	}
	for q, want := range map[string]int{
		"?status=pending": 2, "?status=success": 0, "?source=api": 2, "?source=push": 0, "?ref=main": 2, "?ref=nope": 0,
		"?scope=branches": 2, "?scope=tags": 0, "?username=maintainer": 2, "?username=developer": 0, "?username=ghost": 0,
		"?sha=" + pl["sha"].(string): 2, "?order_by=id&sort=asc&per_page=1": 1, "?updated_after=2000-01-01": 2, "?updated_before=2000-01-01": 0,
		"?ref=main'%20OR%201=1--": 0,
	} {
		if l := list(e.expect(200, "reporter", "GET", base+"/pipelines"+q, nil)); len(l) != want {
			t.Errorf("list%s: %d, want %d", q, len(l), want)
		}
	}
	_, hdr := e.doHeaders("reporter", "GET", base+"/pipelines?per_page=1")
	if hdr.Get("X-Total") != "2" || hdr.Get("X-Total-Pages") != "2" || hdr.Get("X-Next-Page") != "2" {
		t.Fatalf("pagination headers %v", hdr)
	}
	asc := list(e.expect(200, "reporter", "GET", base+"/pipelines?sort=asc", nil))
	if num(obj(asc[0])["id"]) != num(pl["id"]) {
		t.Fatalf("sort=asc %v", asc)
	}
	for _, q := range []string{"?scope=all", "?status=bogus", "?source=x", "?order_by=name", "?sort=up", "?updated_after=yesterday", "?page=x"} {
		e.expect(400, "reporter", "GET", base+"/pipelines"+q, nil)
	}

	latest := obj(e.expect(200, "reporter", "GET", base+"/pipelines/latest", nil))
	if latest["id"] != pl2["id"] {
		t.Fatalf("latest %v", latest)
	}
	e.expect(404, "reporter", "GET", base+"/pipelines/latest?ref=nope", nil)

	jobs := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs", nil))
	st := jobStatuses(jobs)
	want := map[string]string{"unit": "pending", "lint": "pending", "build": "created", "deploy": "created", "cleanup": "created"}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("jobs %v, want %v", st, want)
	}
	j0 := obj(jobs[0])
	for _, k := range []string{"id", "status", "stage", "name", "ref", "tag", "coverage", "allow_failure", "created_at", "started_at", "finished_at",
		"erased_at", "duration", "queued_duration", "user", "commit", "pipeline", "web_url", "project", "artifacts", "runner", "failure_reason", "tag_list", "archived"} {
		if _, ok := j0[k]; !ok {
			t.Errorf("job JSON lacks %q", k)
		}
	}
	if obj(j0["pipeline"])["id"] != pl["id"] || obj(j0["commit"])["id"] != pl["sha"] || j0["ref"] != "main" {
		t.Fatalf("job %v", j0)
	}
	if l := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs?scope[]=pending", nil)); len(l) != 2 {
		t.Fatalf("scope[]=pending: %v", jobStatuses(l))
	}
	if l := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs?scope=pending,created", nil)); len(l) != 5 {
		t.Fatalf("scope=pending,created: %v", jobStatuses(l))
	}
	e.expect(400, "reporter", "GET", base+"/pipelines/"+id+"/jobs?scope[]=bogus", nil)
	bridges := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/bridges", nil))
	if len(bridges) != 1 || obj(bridges[0])["name"] != "child" || obj(obj(bridges[0])["pipeline"])["id"] != pl["id"] {
		t.Fatalf("bridges %v", bridges)
	}
	if _, ok := obj(bridges[0])["downstream_pipeline"]; !ok {
		t.Fatal("bridge lacks downstream_pipeline")
	}
}

func (e *ciEnv) doHeaders(role, method, path string) (int, http.Header) {
	code, _, h := e.doRaw(role, method, path, nil)
	return code, h
}

func TestPipelineCreateRefusals(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp"
	base400 := func(role string, body any, msg string) {
		t.Helper()
		out := obj(e.expect(400, role, "POST", base+"/pipeline", body))
		m := obj(out["message"])
		if m == nil || fmt.Sprint(m["base"]) != fmt.Sprint([]any{msg}) {
			t.Fatalf("body %v: %v, want base %q", body, out, msg)
		}
	}
	base400("maintainer", map[string]any{"ref": "nope"}, "Reference not found")
	base400("maintainer", map[string]any{"ref": "main'; DROP TABLE pipelines; --"}, "Reference not found")
	// The default branch is protected: developers may not run pipelines there.
	base400("developer", map[string]any{"ref": "main"}, "Insufficient permissions for protected ref 'main'")
	e.commit("feature", map[string]string{"f.txt": "x"})
	e.expect(201, "developer", "POST", base+"/pipeline", map[string]any{"ref": "feature"})
	e.commit("broken", map[string]string{".gitlab-ci.yml": "job:\n  script: x\n  stage: nope\n"})
	base400("maintainer", map[string]any{"ref": "broken"}, "job job: chosen stage nope does not exist; available stages are .pre, build, test, deploy, .post")

	for _, tc := range []struct {
		role string
		body any
		want int
	}{
		{"maintainer", map[string]any{}, 400},                                       // ref missing
		{"maintainer", map[string]any{"ref": ""}, 400},                              // ref empty
		{"maintainer", map[string]any{"ref": []any{"main"}}, 400},                   // wrong type
		{"maintainer", map[string]any{"ref": "main", "variables": "x"}, 400},        // variables not a list
		{"maintainer", map[string]any{"ref": "main", "variables": []any{"x"}}, 400}, // entry not an object
		{"maintainer", map[string]any{"ref": "main", "variables": []any{map[string]any{"value": "v"}}}, 400},
		{"maintainer", map[string]any{"ref": "main", "variables": []any{map[string]any{"key": "A B", "value": "v"}}}, 400},
		{"maintainer", map[string]any{"ref": "main", "variables": []any{map[string]any{"key": "A", "variable_type": "blob"}}}, 400},
		{"maintainer", `{"ref": "main"`, 400}, // malformed JSON
		{"maintainer", `["ref"]`, 400},        // not an object
		{"reporter", map[string]any{"ref": "main"}, 403},
		{"stranger", map[string]any{"ref": "main"}, 404},
		{"", map[string]any{"ref": "main"}, 401},
	} {
		if code, out := e.do(tc.role, "POST", base+"/pipeline", tc.body); code != tc.want {
			t.Errorf("%s %v: %d %v, want %d", tc.role, tc.body, code, out, tc.want)
		}
	}
	huge := `{"ref": "main", "x": "` + strings.Repeat("a", 100<<10) + `"}`
	if code, _ := e.do("maintainer", "POST", base+"/pipeline", huge); code != 413 {
		t.Fatalf("huge body: %d, want 413", code)
	}
	many := []any{}
	for i := 0; i < maxPipelineVariables+1; i++ {
		many = append(many, map[string]any{"key": fmt.Sprintf("K%d", i), "value": "v"})
	}
	e.expect(400, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main", "variables": many})
	// Unknown projects and other people's private projects are 404 alike.
	e.expect(404, "maintainer", "POST", "/api/v4/projects/999/pipeline", map[string]any{"ref": "main"})
	e.expect(404, "stranger", "GET", base+"/pipelines", nil)
	e.expect(404, "stranger", "GET", base+"/jobs", nil)
	e.expect(404, "maintainer", "GET", base+"/pipelines/999999", nil)
	e.expect(400, "maintainer", "GET", base+"/pipelines/abc", nil)
	e.expect(404, "maintainer", "GET", base+"/pipelines/-1", nil)
	e.expect(400, "maintainer", "GET", base+"/pipelines/99999999999999999999", nil)
	if l := list(e.expect(200, "maintainer", "GET", base+"/pipelines", nil)); len(l) != 1 {
		t.Fatalf("refusals created pipelines: %v", l)
	}
}

func TestPipelineActions(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp"
	e.commit("feature", map[string]string{"f.txt": "x"})
	pl := obj(e.expect(201, "developer", "POST", base+"/pipeline", map[string]any{"ref": "feature"}))
	id := fmt.Sprint(num(pl["id"]))

	e.expect(403, "reporter", "POST", base+"/pipelines/"+id+"/cancel", nil)
	e.expect(404, "stranger", "POST", base+"/pipelines/"+id+"/cancel", nil)
	c := obj(e.expect(201, "developer", "POST", base+"/pipelines/"+id+"/cancel", nil))
	if c["status"] != "canceled" {
		t.Fatalf("after cancel %v", c)
	}
	st := jobStatuses(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs", nil))
	if st["unit"] != "canceled" || st["build"] != "canceled" {
		t.Fatalf("jobs after cancel %v", st)
	}
	r := obj(e.expect(201, "developer", "POST", base+"/pipelines/"+id+"/retry", nil))
	if r["status"] != "pending" {
		t.Fatalf("after retry %v", r)
	}
	all := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs?include_retried=true", nil))
	latest := list(e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs", nil))
	if len(all) <= len(latest) {
		t.Fatalf("include_retried: %d jobs, without: %d", len(all), len(latest))
	}

	// Protected refs: a pipeline on main belongs to maintainers.
	mainPL := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"}))
	mid := fmt.Sprint(num(mainPL["id"]))
	e.expect(403, "developer", "POST", base+"/pipelines/"+mid+"/cancel", nil)
	e.expect(201, "maintainer", "POST", base+"/pipelines/"+mid+"/cancel", nil)

	e.expect(403, "maintainer", "DELETE", base+"/pipelines/"+id, nil)
	if code, _ := e.do("owner", "DELETE", base+"/pipelines/"+id, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	e.expect(404, "owner", "GET", base+"/pipelines/"+id, nil)
	e.expect(404, "owner", "DELETE", base+"/pipelines/"+id, nil)
}

func TestPipelineRunsToCompletion(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp"
	pl := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"}))
	id := fmt.Sprint(num(pl["id"]))
	jobs := func() any { return e.expect(200, "reporter", "GET", base+"/pipelines/"+id+"/jobs", nil) }
	ids := jobIDs(jobs())
	e.finish(ids["unit"], "success")
	// build needs only unit, so it starts before lint (same stage as unit) ends.
	if st := jobStatuses(jobs()); st["build"] != "pending" || st["lint"] != "pending" {
		t.Fatalf("after unit: %v", st)
	}
	e.finish(ids["lint"], "failed")
	e.finish(ids["build"], "success")
	st := jobStatuses(jobs())
	if st["deploy"] != "manual" || st["cleanup"] != "skipped" || st["lint"] != "failed" {
		t.Fatalf("after build: %v", st)
	}
	got := obj(e.expect(200, "reporter", "GET", base+"/pipelines/"+id, nil))
	// The child bridge stays pending (no downstream handler in this test),
	// so the pipeline is still running.
	if got["status"] != "running" {
		t.Fatalf("pipeline %v", got["status"])
	}
	lint := obj(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/jobs/%d", ids["lint"]), nil))
	if lint["failure_reason"] != "script_failure" || lint["allow_failure"] != true || lint["duration"] == nil {
		t.Fatalf("lint job %v", lint)
	}
	// Jobs API: play the manual job, retry a finished one, cancel, erase.
	e.expect(400, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/play", ids["unit"]), nil)
	e.expect(403, "reporter", "POST", base+fmt.Sprintf("/jobs/%d/play", ids["deploy"]), nil)
	e.expect(403, "developer", "POST", base+fmt.Sprintf("/jobs/%d/play", ids["deploy"]), nil) // protected ref
	played := obj(e.expect(201, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/play", ids["deploy"]),
		map[string]any{"job_variables_attributes": []any{map[string]any{"key": "PLAY", "value": "yes"}}}))
	if played["status"] != "pending" {
		t.Fatalf("played %v", played)
	}
	j, _ := e.st.JobByID(context.Background(), ids["deploy"])
	if !strings.Contains(j.Spec, `"PLAY"`) {
		t.Fatalf("play variables not stored: %s", j.Spec)
	}
	e.expect(403, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/retry", ids["deploy"]), nil) // not finished
	nj := obj(e.expect(201, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/retry", ids["lint"]), nil))
	if num(nj["id"]) == ids["lint"] || nj["status"] != "pending" || nj["name"] != "lint" {
		t.Fatalf("retried %v", nj)
	}
	cj := obj(e.expect(201, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/cancel", num(nj["id"])), nil))
	if cj["status"] != "canceled" {
		t.Fatalf("canceled %v", cj)
	}
	e.expect(403, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/erase", ids["deploy"]), nil)
	er := obj(e.expect(201, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/erase", ids["unit"]), nil))
	if er["erased_at"] == nil {
		t.Fatalf("erased %v", er)
	}
	// Project jobs list: scope filter, newest first, bridges excluded.
	pj := list(e.expect(200, "reporter", "GET", base+"/jobs?scope[]=success&scope[]=failed", nil))
	if st := jobStatuses(pj); len(pj) != 2 || st["unit"] != "success" || st["build"] != "success" {
		t.Fatalf("project jobs %v", st)
	}
	if l := list(e.expect(200, "reporter", "GET", base+"/jobs?include_retried=true&scope=failed", nil)); len(l) != 1 {
		t.Fatalf("retried failed jobs %v", jobStatuses(l))
	}
	e.expect(404, "reporter", "GET", base+"/jobs/99999", nil)
	e.expect(400, "reporter", "GET", base+"/jobs/x", nil)
	e.expect(404, "stranger", "GET", base+fmt.Sprintf("/jobs/%d", ids["unit"]), nil)
	e.expect(400, "reporter", "GET", base+"/jobs?scope[]=nope", nil)
}

// Jobs of another project are not reachable through this project's id.
func TestJobOfOtherProject(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	ctx := context.Background()
	other := &store.Project{NamespaceID: e.p.NamespaceID, Name: "other", Path: "other", FullPath: "group/other", Visibility: "private", CreatorID: e.users["root"].ID}
	if err := e.st.Write(ctx, func(tx *store.Tx) error { return tx.CreateProject(ctx, other) }); err != nil {
		t.Fatal(err)
	}
	pl := obj(e.expect(201, "root", "POST", "/api/v4/projects/group%2Fapp/pipeline", map[string]any{"ref": "main"}))
	jobs := list(e.expect(200, "root", "GET", fmt.Sprintf("/api/v4/projects/group%%2Fapp/pipelines/%d/jobs", num(pl["id"])), nil))
	jid := num(obj(jobs[0])["id"])
	e.expect(404, "root", "GET", fmt.Sprintf("/api/v4/projects/group%%2Fother/jobs/%d", jid), nil)
	e.expect(404, "root", "POST", fmt.Sprintf("/api/v4/projects/group%%2Fother/jobs/%d/cancel", jid), nil)
	e.expect(404, "root", "GET", fmt.Sprintf("/api/v4/projects/group%%2Fother/pipelines/%d", num(pl["id"])), nil)
}

func TestParamsListOfMaps(t *testing.T) {
	p := &Params{v: map[string]any{}}
	if err := p.addValues(url.Values{"variables[][key]": {"A", "B"}, "variables[][value]": {"1"}, "variables[][variable_type]": {"file", "env_var"}}); err != nil {
		t.Fatal(err)
	}
	l := list(p.Value("variables"))
	if len(l) != 2 || obj(l[0])["key"] != "A" || obj(l[0])["value"] != "1" || obj(l[1])["key"] != "B" || obj(l[1])["variable_type"] != "env_var" {
		t.Fatalf("%v", l)
	}
	for _, k := range []string{"[][key]", "a[][]", "a[][b][c]"} {
		if _, _, ok := listOfMapsKey(k); ok {
			t.Errorf("%q taken as a list of maps", k)
		}
	}
}
