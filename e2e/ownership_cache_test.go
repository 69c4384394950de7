package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

const cachePoisonCI = `job:
  script:
    - if [ -f vendor/lib.txt ]; then echo "RESTORED=$(cat vendor/lib.txt)"; else echo "NO-CACHE"; fi
    - mkdir -p vendor && echo "built-on-$CI_COMMIT_REF_NAME" > vendor/lib.txt
  cache:
    key: deps
    paths: [vendor/]
`

// TestCacheSeparatedForProtectedRefs (issue #11): a developer's branch must
// not be able to poison the cache the protected default branch restores.
// With a real runner, main writes its cache, a job on an unprotected branch
// with the same cache key writes a poisoned one, and main's next job must
// still restore its own. GitLab keys the two apart with -protected /
// -non_protected suffixes unless ci_separated_caches is turned off.
func TestCacheSeparatedForProtectedRefs(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "cache runner"})
	startRunner(t, s, "cache-runner", tok)
	pid := newCIProject(t, s, "app")
	files := map[string]string{".gitlab-ci.yml": cachePoisonCI}

	runJob := func(ref string) string {
		t.Helper()
		var pl map[string]any
		if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/pipeline", url.Values{"ref": {ref}}, &pl); code != 201 {
			t.Fatalf("pipeline on %s: %d %v", ref, code, pl)
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			var got map[string]any
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pl["id"]), nil, &got)
			if got["status"] == "success" {
				jobs := pipelineJobs(t, s, pid, got)
				return jobTrace(t, s, pid, jsonID(jobs["job"]["id"]))
			}
			if got["status"] == "failed" || got["status"] == "canceled" {
				t.Fatalf("pipeline on %s: %v", ref, got["status"])
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("pipeline on %s did not finish", ref)
		return ""
	}

	pushBranch(t, s, "root/app", "main", files)
	waitPipeline(t, s, pid, "main", 60*time.Second)
	work := newWorkRepo(t, "dev", files)
	git(t, work, "push", "-q", s.authURL("root/app"), "dev")
	waitPipeline(t, s, pid, "dev", 60*time.Second)

	main := runJob("main")
	if !strings.Contains(main, "RESTORED=built-on-main") || strings.Contains(main, "built-on-dev") {
		t.Errorf("main restored a cache written by the unprotected branch:\n%s", main)
	}
	if !strings.Contains(main, "deps-protected") {
		t.Errorf("main's cache key has no -protected suffix:\n%s", main)
	}
	dev := runJob("dev")
	if !strings.Contains(dev, "RESTORED=built-on-dev") || !strings.Contains(dev, "deps-non_protected") {
		t.Errorf("dev did not use its own non_protected cache:\n%s", dev)
	}

	// The project setting turns separation off (GitLab's ci_separated_caches).
	var p map[string]any
	if code, _ := s.call("PUT", "/api/v4/projects/"+pid, map[string]any{"ci_separated_caches": false}, &p); code != 200 || p["ci_separated_caches"] != false {
		t.Fatalf("turn ci_separated_caches off: %d %v", code, p)
	}
	if shared := runJob("main"); !strings.Contains(shared, "Creating cache deps...\n") {
		t.Errorf("with ci_separated_caches off the key should be plain deps:\n%s", shared)
	}
}
