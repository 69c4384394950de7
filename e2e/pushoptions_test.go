package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPipelinePushOptionCISkip: `git push -o ci.skip` creates no pipeline,
// like GitLab; the pushes around it do.
func TestPipelinePushOptionCISkip(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	var group, app map[string]any
	if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Grp", "path": "grp"}, &group); code != 201 {
		t.Fatalf("create group: %d %v", code, group)
	}
	s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &app)
	id := jsonID(app["id"])
	pipelines := func() []map[string]any {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+id+"/pipelines", nil, &pls)
		return pls
	}
	waitCount := func(n int) {
		t.Helper()
		if !trigWaitFor(10*time.Second, func() bool { return len(pipelines()) == n }) {
			t.Fatalf("want %d pipelines, have %v", n, pipelines())
		}
	}

	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "job:\n  script: echo\n"})
	git(t, w, "push", "-q", s.authURL("grp/app"), "main")
	waitCount(1)

	git(t, w, "commit", "-q", "--allow-empty", "-m", "skip me by push option")
	skipped := git(t, w, "rev-parse", "HEAD")
	git(t, w, "push", "-q", "-o", "ci.skip", s.authURL("grp/app"), "main")
	if !trigWaitFor(10*time.Second, func() bool { return strings.Contains(s.Log(), "ci.skip") && strings.Contains(s.Log(), "skipped") }) {
		t.Fatalf("the ci.skip push was not reported as skipped:\n%s", s.Log())
	}
	// Another option does not skip anything.
	git(t, w, "commit", "-q", "--allow-empty", "-m", "run me")
	git(t, w, "push", "-q", "-o", "merge_request.create", s.authURL("grp/app"), "main")
	waitCount(2)
	for _, pl := range pipelines() {
		if pl["sha"] == skipped {
			t.Fatalf("pipeline created for the ci.skip push: %v", pl)
		}
	}
}
