package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// processesWithArgs lists the pids whose command line is exactly args.
func processesWithArgs(args ...string) []string {
	want := []byte(strings.Join(args, "\x00") + "\x00")
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Equal(b, want) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestRunnerCancelSilentJob: a job that prints nothing (sleep) on an
// external `kiln runner` is stopped within about a second of its cancel:
// the runner checks the job's status every second, not only when it sends
// log output or its 30 s keep-alive.
func TestRunnerCancelSilentJob(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "app")
			_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "quiet", "run_untagged": true})
			startRunner(t, s, "quiet", tok)

			// A sleep no other test runs, so that its process can be found.
			const nap = "30.731"
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": `
silent:
  script:
    - echo started
    - sleep ` + nap + `; echo SHOULD_NOT_PRINT
`})
			j := waitJob(t, s, pid, "main", "silent", 60*time.Second, "running")
			jid := jsonID(j["id"])
			for deadline := time.Now().Add(30 * time.Second); len(processesWithArgs("sleep", nap)) == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("the job's sleep never started:\n%s", jobTrace(t, s, pid, jid))
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Let the start-up output be sent, so the job is truly silent.
			time.Sleep(2 * time.Second)

			start := time.Now()
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/jobs/"+jid+"/cancel", nil, nil); code != 201 {
				t.Fatalf("cancel: %d", code)
			}
			done := waitJob(t, s, pid, "main", "silent", 20*time.Second, "canceled")
			took := time.Since(start)
			t.Logf("cancel → %v in %s", done["status"], took)
			if took > 3*time.Second {
				t.Errorf("a silent job took %s to cancel, want about a second", took)
			}
			if p := processesWithArgs("sleep", nap); len(p) > 0 {
				t.Errorf("the canceled job's process is still running: pids %v", p)
			}
			// The marker must never appear, not even once the sleep is over.
			time.Sleep(time.Second)
			tr := jobTrace(t, s, pid, jid)
			for _, line := range strings.Split(tr, "\n") {
				if strings.TrimSpace(line) == "SHOULD_NOT_PRINT" {
					t.Errorf("the script went on after its cancel:\n%s", tr)
				}
			}
			if !strings.Contains(tr, "started") {
				t.Errorf("trace of the canceled job:\n%s", tr)
			}
			s.stop()
		})
	}
}
