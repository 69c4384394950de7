package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRetryRunsSkippedJobsAsRetrier (redteam): a maintainer ran a pipeline
// on a developer's branch; its first job failed and the next was skipped.
// When the developer retries the pipeline, the skipped job runs again, and
// it must run as the developer (GitLab sets the user of every job it moves
// back to created), not as the maintainer: its CI_JOB_TOKEN would
// otherwise act as the maintainer and trigger the protected main branch
// with the developer's BASH_ENV next to the protected secret.
func TestRetryRunsSkippedJobsAsRetrier(t *testing.T) {
	f := newAttackFixture(t)
	s := f.s
	before := len(f.pipelines(f.appID, "main"))
	// The gate fails on its first run in this checkout and passes after:
	// the developer decides when the next stage runs.
	ci := `stages: [gate, use]
gate:
  stage: gate
  script:
    - if [ -f .git/gate-ran ]; then exit 0; fi; touch .git/gate-ran; exit 1
use:
  stage: use
  script:
    - |
      curl -s -o resp.json -w "status=%{http_code}\n" -X POST -F "token=$CI_JOB_TOKEN" -F ref=main -F 'variables[BASH_ENV]=` + attackBashEnv + `' "$CI_API_V4_URL/projects/$CI_PROJECT_ID/trigger/pipeline"
      echo "body=$(cat resp.json)"
`
	w := newWorkRepo(t, "feat", map[string]string{".gitlab-ci.yml": ci})
	git(t, w, "push", "-q", "-o", "ci.skip", f.devURL("grp/app"), "feat")

	var pl map[string]any
	if code, _ := s.callAs(f.maintTok, "POST", "/api/v4/projects/"+f.appID+"/pipeline", url.Values{"ref": {"feat"}}, &pl); code != 201 {
		t.Fatalf("maintainer's pipeline on feat: %d %v", code, pl)
	}
	plID := jsonID(pl["id"])
	waitStatus := func(want string) map[string]any {
		t.Helper()
		var got map[string]any
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			s.call("GET", "/api/v4/projects/"+f.appID+"/pipelines/"+plID, nil, &got)
			if got["status"] == want {
				return got
			}
		}
		t.Fatalf("pipeline %s: %v, want %s", plID, got["status"], want)
		return nil
	}
	got := waitStatus("failed")
	if st := pipelineJobs(t, s, f.appID, got)["use"]["status"]; st != "skipped" {
		t.Fatalf("use job: %v, want skipped", st)
	}

	if code, _ := s.callAs(f.devTok, "POST", "/api/v4/projects/"+f.appID+"/pipelines/"+plID+"/retry", nil, nil); code != 201 {
		t.Fatalf("developer's retry: %d", code)
	}
	got = waitStatus("success")
	use := pipelineJobs(t, s, f.appID, got)["use"]
	if u, _ := use["user"].(map[string]any); u == nil || u["username"] != "dev" {
		t.Errorf("the re-run skipped job ran as %v, want the developer who retried", use["user"])
	}
	tr := jobTrace(t, s, f.appID, jsonID(use["id"]))
	if !strings.Contains(tr, "status=400") {
		t.Errorf("the re-run job's token was not refused on main:\n%s", tr)
	}
	if n := len(f.pipelines(f.appID, "main")); n != before {
		t.Errorf("pipelines on main: %d, want %d", n, before)
	}
	f.assertNoSecretInLogs(t)
}
