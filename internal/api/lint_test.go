package api

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestLintAPI(t *testing.T) {
	files := pipelineFiles()
	files[".gitlab-ci.yml"] = "include: ci/more.yml\n" + testCI
	files["ci/more.yml"] = "extra:\n  stage: test\n  script: echo extra\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n"
	e := newCIEnv(t, files)
	base := "/api/v4/projects/group%2Fapp/ci/lint"

	res := obj(e.expect(200, "developer", "POST", base, map[string]any{"content": "a:\n  script: echo\n", "include_jobs": true}))
	if res["valid"] != true || len(list(res["errors"])) != 0 || res["merged_yaml"] == nil || len(list(res["jobs"])) != 1 {
		t.Fatalf("valid content: %v", res)
	}
	if j := obj(list(res["jobs"])[0]); j["name"] != "a" || j["stage"] != "test" || fmt.Sprint(j["script"]) != "[echo]" {
		t.Fatalf("job %v", j)
	}
	res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": "a:\n  script: echo\n"}))
	if _, ok := res["jobs"]; ok {
		t.Fatalf("jobs without include_jobs: %v", res)
	}
	res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": "a:\n  stage: nope\n  script: x\n"}))
	if res["valid"] != false || len(list(res["errors"])) != 1 {
		t.Fatalf("invalid content: %v", res)
	}
	res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": ""}))
	if res["valid"] != false || fmt.Sprint(res["errors"]) != "[Please provide content of .gitlab-ci.yml]" {
		t.Fatalf("empty content: %v", res)
	}
	// Local includes are read from the repository at ref and listed.
	res = obj(e.expect(200, "developer", "POST", base, url.Values{"content": {"include: ci/more.yml\n"}, "include_jobs": {"true"}}))
	if res["valid"] != true || len(list(res["includes"])) != 1 || obj(list(res["includes"])[0])["location"] != "ci/more.yml" {
		t.Fatalf("include: %v", res)
	}
	// Dry run evaluates rules for the ref: extra runs on main only.
	e.commit("feature", map[string]string{"x": "1"})
	for ref, want := range map[string]bool{"main": true, "feature": false} {
		res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": files[".gitlab-ci.yml"], "dry_run": true, "ref": ref, "include_jobs": true}))
		has := false
		for _, j := range list(res["jobs"]) {
			has = has || obj(j)["name"] == "extra"
		}
		if res["valid"] != true || has != want {
			t.Fatalf("dry run on %s: extra=%v, want %v (%v)", ref, has, want, res)
		}
	}
	res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": "a:\n  script: x\n", "dry_run": true, "ref": "nope"}))
	if res["valid"] != false || fmt.Sprint(res["errors"]) != "[Reference not found]" {
		t.Fatalf("dry run on missing ref: %v", res)
	}

	// GET lints the project's own file.
	res = obj(e.expect(200, "developer", "GET", base+"?include_jobs=true", nil))
	if res["valid"] != true || len(list(res["jobs"])) != 7 || len(list(res["includes"])) != 1 {
		t.Fatalf("project lint: %v", res)
	}
	res = obj(e.expect(200, "developer", "GET", base+"?include_jobs=true&dry_run=true&dry_run_ref=feature", nil))
	if res["valid"] != true || len(list(res["jobs"])) != 6 {
		t.Fatalf("project dry run on feature: %v", res)
	}
	e.commit("nofile", map[string]string{})
	e.git("rm", "-q", ".gitlab-ci.yml")
	e.commit("nofile", nil)
	res = obj(e.expect(200, "developer", "GET", base+"?content_ref=nofile", nil))
	if res["valid"] != false {
		t.Fatalf("missing file: %v", res)
	}
	e.expect(404, "developer", "GET", base+"?content_ref=nope", nil)

	// Hostile input.
	e.expect(400, "developer", "POST", base, map[string]any{})
	e.expect(400, "developer", "POST", base, map[string]any{"content": []any{1}})
	e.expect(400, "developer", "POST", base, map[string]any{"content": "a: b", "dry_run": "maybe"})
	e.expect(400, "developer", "POST", base, `{"content": `)
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'k'; i++ {
		bomb += fmt.Sprintf("%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	res = obj(e.expect(200, "developer", "POST", base, map[string]any{"content": bomb}))
	if res["valid"] != false {
		t.Fatalf("YAML bomb accepted: %v", res)
	}
	if code, _ := e.do("developer", "POST", base, `{"content":"`+strings.Repeat("#", 70<<10)+`"}`); code != 413 {
		t.Fatalf("huge content: %d", code)
	}
	e.expect(403, "reporter", "POST", base, map[string]any{"content": "a: b"})
	e.expect(404, "stranger", "GET", base, nil)
	e.expect(401, "", "POST", base, map[string]any{"content": "a: b"})
}
