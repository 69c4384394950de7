package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJobCannotPlantSymlinkInAnotherCheckoutsTmpDir (redteam): a runner
// keeps a project's checkout in <builds>/<slot>/<ns>/<project> and writes
// its file variables (as the agent's user: root for a root server's
// built-in runners) into <ns>/<project>.tmp, which is the checkout of a
// project named "<project>.tmp" in the same namespace. Any user can make
// both in their personal namespace: a job of eve/app.tmp plants a symlink
// in its checkout, and the agent, writing a file variable of eve/app
// there, followed it and wrote the variable's content to any path on the
// host. The agent must start every job with a fresh tmp directory.
func TestJobCannotPlantSymlinkInAnotherCheckoutsTmpDir(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.start()
	_, eveTok := s.newUser("eve")
	target := filepath.Join(t.TempDir(), "written-by-the-agent")
	for _, name := range []string{"app", "app.tmp"} {
		var p map[string]any
		if code, _ := s.callAs(eveTok, "POST", "/api/v4/projects", url.Values{"name": {name}, "path": {name}}, &p); code != 201 {
			t.Fatalf("eve creates %s: %d %v", name, code, p)
		}
	}
	var app, planter map[string]any
	s.call("GET", "/api/v4/projects/"+url.PathEscape("eve/app"), nil, &app)
	s.call("GET", "/api/v4/projects/"+url.PathEscape("eve/app.tmp"), nil, &planter)
	appID, planterID := jsonID(app["id"]), jsonID(planter["id"])
	if code, _ := s.callAs(eveTok, "POST", "/api/v4/projects/"+appID+"/variables",
		map[string]any{"key": "PWN", "value": "* * * * * root id > /tmp/owned\n", "variable_type": "file"}, nil); code != 201 {
		t.Fatalf("file variable: %d", code)
	}
	eveURL := func(path string) string {
		return strings.Replace(s.authURL(path), "root:"+rootToken, "eve:"+eveTok, 1)
	}
	w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "plant:\n  script:\n    - ln -s " + target + " PWN\n    - ls -l PWN\n"})
	git(t, w, "push", "-q", eveURL("eve/app.tmp"), "main")
	if pl := waitPipeline(t, s, planterID, "main", 90*time.Second); pl["status"] != "success" {
		t.Fatalf("planting job: %v", pl["status"])
	}
	w = newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "job:\n  script: [cat \"$PWN\"]\n"})
	git(t, w, "push", "-q", eveURL("eve/app"), "main")
	pl := waitPipeline(t, s, appID, "main", 90*time.Second)
	if b, err := os.ReadFile(target); err == nil {
		t.Fatalf("the runner wrote eve's file variable through her symlink to %s: %q", target, b)
	}
	if pl["status"] != "success" {
		t.Errorf("eve/app's job: %v, want success", pl["status"])
	}
}
