package api

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/pipeline"
)

func TestVariablesCRUD(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp/variables"

	v := obj(e.expect(201, "maintainer", "POST", base, map[string]any{"key": "TOKEN", "value": "s3cr3t-value", "masked": true, "protected": true, "description": "d"}))
	want := map[string]any{"key": "TOKEN", "value": "s3cr3t-value", "variable_type": "env_var", "protected": true, "masked": true,
		"raw": false, "environment_scope": "*", "description": "d", "hidden": false}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Fatalf("created %v\nwant %v", v, want)
	}
	// Values are encrypted at rest.
	sv, err := e.st.ProjectVariable(context.Background(), e.p.ID, "TOKEN", "*")
	if err != nil || strings.Contains(sv.ValueEnc, "s3cr3t") {
		t.Fatalf("stored %v %v", sv, err)
	}
	// Form bodies work as well as JSON.
	e.expect(201, "maintainer", "POST", base, url.Values{"key": {"FILE_VAR"}, "value": {"line1\nline2"}, "variable_type": {"file"}})
	e.expect(201, "maintainer", "POST", base, map[string]any{"key": "SCOPED", "value": "prod", "environment_scope": "production"})
	e.expect(201, "maintainer", "POST", base, map[string]any{"key": "SCOPED", "value": "stage", "environment_scope": "staging/*"})

	l := list(e.expect(200, "maintainer", "GET", base, nil))
	if len(l) != 4 {
		t.Fatalf("list %v", l)
	}
	if l := list(e.expect(200, "maintainer", "GET", base+"?per_page=1&page=2", nil)); len(l) != 1 {
		t.Fatalf("paged %v", l)
	}
	got := obj(e.expect(200, "maintainer", "GET", base+"/FILE_VAR", nil))
	if got["value"] != "line1\nline2" || got["variable_type"] != "file" {
		t.Fatalf("get %v", got)
	}
	out := obj(e.expect(409, "maintainer", "GET", base+"/SCOPED", nil))
	if !strings.Contains(fmt.Sprint(out["message"]), "filter[environment_scope]") {
		t.Fatalf("409 body %v", out)
	}
	got = obj(e.expect(200, "maintainer", "GET", base+"/SCOPED?filter[environment_scope]=staging/*", nil))
	if got["value"] != "stage" {
		t.Fatalf("filtered get %v", got)
	}
	up := obj(e.expect(200, "maintainer", "PUT", base+"/SCOPED?filter[environment_scope]=production", map[string]any{"value": "prod2", "protected": true}))
	if up["value"] != "prod2" || up["protected"] != true || up["environment_scope"] != "production" {
		t.Fatalf("updated %v", up)
	}
	// JSON filter object.
	up = obj(e.expect(200, "maintainer", "PUT", base+"/SCOPED", map[string]any{"filter": map[string]any{"environment_scope": "production"}, "description": "x"}))
	if up["value"] != "prod2" || up["description"] != "x" {
		t.Fatalf("updated via JSON filter %v", up)
	}
	// Moving a scope onto an existing key+scope is a duplicate.
	e.expect(400, "maintainer", "PUT", base+"/SCOPED?filter[environment_scope]=production", map[string]any{"environment_scope": "staging/*"})
	// Masking an existing value that cannot be masked fails.
	out = obj(e.expect(400, "maintainer", "PUT", base+"/FILE_VAR", map[string]any{"masked": true}))
	if fmt.Sprint(out["message"]) != "map[value:[is invalid]]" {
		t.Fatalf("mask multi-line: %v", out)
	}
	if code, _ := e.do("maintainer", "DELETE", base+"/FILE_VAR", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	e.expect(404, "maintainer", "GET", base+"/FILE_VAR", nil)
	e.expect(404, "maintainer", "DELETE", base+"/FILE_VAR", nil)
	e.expect(404, "maintainer", "PUT", base+"/NOPE", map[string]any{"value": "x"})

	// Maintainer+ only; strangers do not learn the project exists.
	e.expect(403, "developer", "GET", base, nil)
	e.expect(403, "developer", "POST", base, map[string]any{"key": "X", "value": "y"})
	e.expect(403, "reporter", "GET", base+"/TOKEN", nil)
	e.expect(404, "stranger", "GET", base, nil)
	e.expect(401, "", "GET", base, nil)
	e.expect(200, "owner", "GET", base, nil)
}

func TestVariablesValidation(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp/variables"
	e.expect(201, "maintainer", "POST", base, map[string]any{"key": "DUP", "value": "x"})
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"key": "DUP", "value": "y"}, `{"message":{"key":["(DUP) has already been taken"]}}`},
		{map[string]any{"key": "BAD-KEY", "value": "y"}, `{"message":{"key":["can contain only letters, digits and '_'."]}}`},
		{map[string]any{"key": "A' OR '1'='1", "value": "y"}, `{"message":{"key":["can contain only letters, digits and '_'."]}}`},
		{map[string]any{"key": strings.Repeat("K", 256), "value": "y"}, `{"message":{"key":["is too long (maximum is 255 characters)"]}}`},
		{map[string]any{"key": "M", "value": "short", "masked": true}, `{"message":{"value":["is invalid"]}}`},
		{map[string]any{"key": "M", "value": "has space in it", "masked": true}, `{"message":{"value":["is invalid"]}}`},
		{map[string]any{"key": "M", "value": "bad|chars!!", "masked": true}, `{"message":{"value":["is invalid"]}}`},
		{map[string]any{"key": "M", "value": "two\nlines-long", "masked": true, "raw": true}, `{"message":{"value":["is invalid"]}}`},
		{map[string]any{"key": "M", "value": "x", "environment_scope": "a|b"}, `{"message":{"environment_scope":["can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', '*' and spaces"]}}`},
		{map[string]any{"key": "M", "value": "x", "variable_type": "blob"}, `{"error":"variable_type does not have a valid value"}`},
		{map[string]any{"key": "M", "value": "x", "masked": "perhaps"}, `{"error":"masked is invalid"}`},
		{map[string]any{"key": "M"}, `{"error":"value is missing"}`},
		{map[string]any{"value": "x"}, `{"error":"key is missing"}`},
		{map[string]any{"key": []any{"M"}, "value": "x"}, `{"error":"key is invalid"}`},
		{map[string]any{"key": "M", "value": map[string]any{"a": 1}}, `{"error":"value is invalid"}`},
		{`{"key": "M", "value": `, ""},
	} {
		code, raw, _ := e.doRaw("maintainer", "POST", base, tc.body)
		if code != 400 || (tc.want != "" && strings.TrimSpace(string(raw)) != tc.want) {
			t.Errorf("%v: %d %s, want 400 %s", tc.body, code, raw, tc.want)
		}
	}
	// Values GitLab can mask.
	for i, v := range []string{"abcdefgh", "Zm9vYmFy+/==", "user@host:path.~-_", strings.Repeat("x", 100)} {
		e.expect(201, "maintainer", "POST", base, map[string]any{"key": fmt.Sprintf("OK%d", i), "value": v, "masked": true})
	}
	// Raw masked values may hold any non-space characters.
	e.expect(201, "maintainer", "POST", base, map[string]any{"key": "RAWM", "value": "p|a$s!w#rd", "masked": true, "raw": true})
	if code, _ := e.do("maintainer", "POST", base, `{"key":"BIG","value":"`+strings.Repeat("v", 70<<10)+`"}`); code != 413 {
		t.Fatalf("huge body: %d, want 413", code)
	}
	e.expect(400, "maintainer", "POST", base, map[string]any{"key": "LONG", "value": strings.Repeat("v", maxVariableValue+1)})
}

func TestProtectedRefsAndVariables(t *testing.T) {
	e := newCIEnv(t, pipelineFiles())
	base := "/api/v4/projects/group%2Fapp"
	pb := obj(e.expect(201, "maintainer", "POST", base+"/protected_branches", map[string]any{"name": "release/*"}))
	if pb["name"] != "release/*" || len(list(pb["push_access_levels"])) != 1 {
		t.Fatalf("protected branch %v", pb)
	}
	e.expect(409, "maintainer", "POST", base+"/protected_branches", map[string]any{"name": "release/*"})
	e.expect(400, "maintainer", "POST", base+"/protected_branches", map[string]any{"name": "bad..name"})
	e.expect(400, "maintainer", "POST", base+"/protected_branches", map[string]any{})
	e.expect(403, "developer", "POST", base+"/protected_branches", map[string]any{"name": "x"})
	e.expect(404, "stranger", "GET", base+"/protected_branches", nil)
	if l := list(e.expect(200, "developer", "GET", base+"/protected_branches", nil)); len(l) != 1 {
		t.Fatalf("list %v", l)
	}
	e.expect(200, "developer", "GET", base+"/protected_branches/release%2F*", nil)
	e.expect(404, "developer", "GET", base+"/protected_branches/nope", nil)
	pt := obj(e.expect(201, "maintainer", "POST", base+"/protected_tags", url.Values{"name": {"v*"}}))
	if pt["name"] != "v*" || len(list(pt["create_access_levels"])) != 1 {
		t.Fatalf("protected tag %v", pt)
	}

	// A protected variable reaches pipelines on protected refs only.
	e.expect(201, "maintainer", "POST", base+"/variables", map[string]any{"key": "SECRET", "value": "prot-value", "protected": true})
	e.expect(201, "maintainer", "POST", base+"/variables", map[string]any{"key": "OPEN", "value": "open-value"})
	e.commit("release/1", map[string]string{"r.txt": "1"})
	e.commit("feature", map[string]string{"f.txt": "1"})
	seen := func(ref string) map[string]string {
		t.Helper()
		pl := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": ref}))
		ctx := context.Background()
		p, _ := e.st.PipelineByID(ctx, num(pl["id"]))
		jobs, _ := e.st.JobsOfPipeline(ctx, p.ID)
		vars, err := e.engine.JobVariables(ctx, e.p, p, jobs[0], nil2spec(jobs[0].Spec), "tok")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, v := range vars {
			m[v.Key] = v.Value
		}
		return m
	}
	if m := seen("release/1"); m["SECRET"] != "prot-value" || m["OPEN"] != "open-value" {
		t.Fatalf("release/1 vars SECRET=%q OPEN=%q", m["SECRET"], m["OPEN"])
	}
	if m := seen("feature"); m["SECRET"] != "" || m["OPEN"] != "open-value" {
		t.Fatalf("feature vars SECRET=%q", m["SECRET"])
	}
	// Developers cannot run pipelines on protected branches (they would see SECRET).
	out := obj(e.expect(400, "developer", "POST", base+"/pipeline", map[string]any{"ref": "release/1"}))
	if fmt.Sprint(out["message"]) != "map[base:[Insufficient permissions for protected ref 'release/1']]" {
		t.Fatalf("developer on protected ref: %v", out)
	}
	if code, _ := e.do("maintainer", "DELETE", base+"/protected_branches/release%2F*", nil); code != 204 {
		t.Fatalf("unprotect: %d", code)
	}
	e.expect(404, "maintainer", "DELETE", base+"/protected_branches/release%2F*", nil)
	if m := seen("release/1"); m["SECRET"] != "" {
		t.Fatal("unprotected branch still sees protected variable")
	}
	e.expect(201, "developer", "POST", base+"/pipeline", map[string]any{"ref": "release/1"})
	if code, _ := e.do("maintainer", "DELETE", base+"/protected_tags/v*", nil); code != 204 {
		t.Fatalf("unprotect tag: %d", code)
	}
}

func nil2spec(s string) *pipeline.JobSpec {
	sp, err := pipeline.ParseSpec(s)
	if err != nil {
		return &pipeline.JobSpec{}
	}
	return sp
}
