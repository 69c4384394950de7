package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/kilnci/kiln/internal/pipeline"
)

// Pipelines link to their upstream and downstream pipelines; bridges carry
// GitLab's downstream_pipeline.
func TestPipelineUpstreamDownstreamLinks(t *testing.T) {
	e := newCIEnv(t, map[string]string{
		".gitlab-ci.yml": "build:\n  script: echo\nchild:\n  trigger:\n    include: child.yml\n    strategy: depend\n",
		"child.yml":      "c1:\n  script: echo\n",
	})
	base := "/api/v4/projects/group%2Fapp"
	up := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"}))
	if up["upstream"] != nil || len(list(up["downstream"])) != 0 || up["downstream"] == nil {
		t.Fatalf("fresh pipeline links: upstream %v downstream %v", up["upstream"], up["downstream"])
	}
	upID := num(up["id"])
	bridges := list(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d/bridges", upID), nil))
	if len(bridges) != 1 || obj(bridges[0])["downstream_pipeline"] != nil {
		t.Fatalf("bridges before downstream: %v", bridges)
	}
	bridgeID := num(obj(bridges[0])["id"])

	// What internal/trigger does for a pending bridge.
	ctx := context.Background()
	child, err := e.engine.Create(ctx, pipeline.Request{Project: e.p, Ref: "main", Source: "parent_pipeline", User: e.users["maintainer"],
		ChildIncludes: []string{"child.yml"}, UpstreamJobID: bridgeID, UpstreamPipelineID: upID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.engine.BridgeCreated(ctx, bridgeID, child.ID, true); err != nil {
		t.Fatal(err)
	}

	got := obj(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d", child.ID), nil))
	u := obj(got["upstream"])
	if num(u["pipeline_id"]) != upID || num(u["job_id"]) != bridgeID || num(u["project_id"]) != e.p.ID ||
		u["web_url"] != fmt.Sprintf("http://kiln.test/group/app/-/pipelines/%d", upID) {
		t.Fatalf("child upstream: %v", got["upstream"])
	}
	if len(list(got["downstream"])) != 0 {
		t.Fatalf("child downstream: %v", got["downstream"])
	}

	got = obj(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d", upID), nil))
	if got["upstream"] != nil {
		t.Fatalf("upstream of a top pipeline: %v", got["upstream"])
	}
	down := list(got["downstream"])
	if len(down) != 1 {
		t.Fatalf("downstream: %v", got["downstream"])
	}
	d := obj(down[0])
	if num(d["id"]) != child.ID || d["source"] != "parent_pipeline" || num(d["project_id"]) != e.p.ID ||
		d["web_url"] != fmt.Sprintf("http://kiln.test/group/app/-/pipelines/%d", child.ID) ||
		num(obj(d["bridge"])["id"]) != bridgeID || obj(d["bridge"])["name"] != "child" {
		t.Fatalf("downstream entry: %v", d)
	}

	// GitLab's Bridge entity: downstream_pipeline with PipelineBasic's fields.
	bridges = list(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d/bridges", upID), nil))
	dp := obj(obj(bridges[0])["downstream_pipeline"])
	for _, k := range []string{"id", "iid", "project_id", "sha", "ref", "status", "source", "created_at", "updated_at", "web_url"} {
		if _, ok := dp[k]; !ok {
			t.Fatalf("downstream_pipeline lacks %s: %v", k, dp)
		}
	}
	if num(dp["id"]) != child.ID || dp["source"] != "parent_pipeline" {
		t.Fatalf("downstream_pipeline: %v", dp)
	}
}
