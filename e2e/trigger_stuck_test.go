package e2e

import (
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTriggerWaitExplainsStuckJob: `kiln trigger --wait` on a pipeline
// whose job needs a tag no runner has says so (the job page's explanation,
// naming the tag and the runners) within seconds, once, and keeps waiting;
// once a runner with the tag runs, it finishes with success.
func TestTriggerWaitExplainsStuckJob(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "stuckapp")
			createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "linux-box", "tag_list": "linux", "run_untagged": true})
			var tr map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/triggers", url.Values{"description": {"stuck"}}, &tr); code != 201 {
				t.Fatalf("create trigger: %d %v", code, tr)
			}
			pushBranch(t, s, "root/stuckapp", "main", map[string]string{".gitlab-ci.yml": "deploy:\n  tags: [gpu-deploy]\n  script: echo deployed-on-gpu\n"})

			cmd := exec.Command(kilnBin, "trigger", "--url", s.URL, "--project", "root/stuckapp", "--token", tr["token"].(string), "--ref", "main", "--wait", "--timeout", "120s")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var out procLog
			done, err := out.start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				select {
				case <-done:
				default:
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
			})
			const why = "This job is stuck: it has the tags gpu-deploy, and no runner available to this project has all of them."
			start := time.Now()
			if !trigWaitFor(10*time.Second, func() bool { return strings.Contains(out.String(), why) }) {
				t.Fatalf("kiln trigger --wait did not explain the stuck job within 10s:\n%s", out.String())
			}
			t.Logf("explained after %s", time.Since(start).Round(time.Millisecond))
			if !strings.Contains(out.String(), "job deploy (#") || !strings.Contains(out.String(), "(linux-box): linux") {
				t.Errorf("explanation does not name the job and the runners:\n%s", out.String())
			}
			select {
			case <-done:
				t.Fatalf("kiln trigger stopped waiting:\n%s", out.String())
			case <-time.After(3 * time.Second):
			}
			if n := strings.Count(out.String(), why); n != 1 {
				t.Errorf("explanation printed %d times, want once per change:\n%s", n, out.String())
			}

			_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "gpu-box", "tag_list": "gpu-deploy"})
			startRunner(t, s, "gpu", tok)
			select {
			case <-done:
			case <-time.After(90 * time.Second):
				t.Fatalf("kiln trigger did not finish after a runner with the tag started:\n%s", out.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out.String(), "deploy: success") || !strings.Contains(out.String(), " success\n") {
				t.Fatalf("kiln trigger: exit %d\n%s", code, out.String())
			}
		})
	}
}
