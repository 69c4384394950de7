package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestBuiltinJobsDoNotInheritServerEnvironment (redteam): a built-in
// runner lives in the server process, whose environment is the operator's:
// libpq's PGPASSWORD for the database, cloud credentials for the object
// store, and the like. Any user's job must not see it (only KILN_* was
// dropped before); it gets a small allowlist (PATH, locale, time zone) and
// its CI variables.
func TestBuiltinJobsDoNotInheritServerEnvironment(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.Env = []string{"PGPASSWORD=pg-Secret-4711", "AWS_SECRET_ACCESS_KEY=aws-Secret-4711", "LC_ALL=C"}
	s.start()
	pid := newCIProject(t, s, "envprobe")
	pushBranch(t, s, "root/envprobe", "main", map[string]string{".gitlab-ci.yml": `job:
  script:
    - echo "LEAKS=$(env | grep -c 'Secret-47[1]1')"
    - echo "PATH-SET=${PATH:+yes}"
    - echo "LCALL=$LC_ALL"
`})
	pl := waitPipeline(t, s, pid, "main", 90*time.Second)
	trace := jobTrace(t, s, pid, jsonID(pipelineJobs(t, s, pid, pl)["job"]["id"]))
	if pl["status"] != "success" || !strings.Contains(trace, "PATH-SET=yes") || !strings.Contains(trace, "LCALL=C") {
		t.Fatalf("probe job (%v) did not run as expected:\n%s", pl["status"], trace)
	}
	if !strings.Contains(trace, "LEAKS=0") || strings.Contains(trace, "Secret-4711") {
		t.Fatalf("a job saw the server's environment:\n%s", trace)
	}
}
