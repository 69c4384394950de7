package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The developer's branch: it prints what an earlier job left in .git, and
// plants a post-checkout hook that copies the protected variable of the
// next checkout into .git, which git clean -ffdx keeps.
const buildDirPoisonCI = `job:
  script:
    - if [ -f .git/loot ]; then echo "LOOT=$(base64 < .git/loot | tr -d '\n')"; else echo "NO-LOOT"; fi
    - mkdir -p .git/hooks
    - echo 'test -n "$DEPLOY_SECRET" && echo "$DEPLOY_SECRET" > .git/loot; true' > .git/hooks/post-checkout
    - chmod +x .git/hooks/post-checkout
`

// TestBuildDirSeparatedForProtectedRefs (redteam): a runner reuses a
// project's checkout between jobs (GitLab's default "fetch" strategy), .git
// included. A developer's job on an unprotected branch must not be able to
// leave a git hook (or git config) there that the next job on the protected
// default branch runs with its protected variables, and read them back in
// its next job: protected and unprotected jobs get different build
// directories, as their caches are keyed apart.
func TestBuildDirSeparatedForProtectedRefs(t *testing.T) {
	f := newAttackFixture(t) // one external runner, one job at a time
	s := f.s
	work := newWorkRepo(t, "feat", map[string]string{".gitlab-ci.yml": buildDirPoisonCI})
	git(t, work, "push", "-q", f.devURL("grp/app"), "feat")
	waitPipeline(t, s, f.appID, "feat", 90*time.Second) // plants the hook

	// The maintainer deploys main: its checkout must not run the hook.
	var pl map[string]any
	if code, _ := s.callAs(f.maintTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline", url.Values{"ref": {"main"}}, &pl); code != 201 {
		t.Fatalf("maintainer's pipeline on main: %d %v", code, pl)
	}
	if got := waitPipeline(t, s, f.appID, "main", 90*time.Second); got["status"] != "success" {
		t.Fatalf("main pipeline: %v", got["status"])
	}
	// The developer runs the branch again and prints what was left.
	if code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline", url.Values{"ref": {"feat"}}, &pl); code != 201 {
		t.Fatalf("developer's pipeline on feat: %d %v", code, pl)
	}
	var dev string
	deadline := time.Now().Add(90 * time.Second)
	for dev == "" && time.Now().Before(deadline) {
		var got map[string]any
		s.call("GET", "/api/v4/projects/"+f.appID+"/pipelines/"+jsonID(pl["id"]), nil, &got)
		if got["status"] == "success" {
			dev = jobTrace(t, s, f.appID, jsonID(pipelineJobs(t, s, f.appID, got)["job"]["id"]))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(dev, "LOOT") {
		t.Fatalf("the developer's second job did not run its probe:\n%s", dev)
	}
	f.assertNoSecretInLogs(t)
}
