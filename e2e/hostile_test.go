package e2e

// Hostile-load tests: each sends one attack at the real binary and checks
// that it is refused (a precise 4xx or a closed connection), that nothing
// was written, that the server's memory stayed bounded and that a normal
// client is still served.

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// capMemory puts the running server under an address-space limit (the Go
// runtime reserves ~2 GB of virtual memory at start, so the cap sits above
// that) and returns a function reading its peak resident set in MiB.
func (s *server) capMemory(t *testing.T, asBytes uint64) func() int {
	t.Helper()
	pid := s.cmd.Process.Pid
	lim := unix.Rlimit{Cur: asBytes, Max: asBytes}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil); err != nil {
		t.Logf("prlimit: %v (running without an address-space cap)", err)
	}
	return func() int { return procStatusMiB(pid, "VmHWM") }
}

// procStatusMiB reads a kB field of /proc/<pid>/status, in MiB.
func procStatusMiB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb / 1024
		}
	}
	return -1
}

// servedNormally checks that an ordinary API call still answers quickly.
func (s *server) servedNormally(t *testing.T) {
	t.Helper()
	start := time.Now()
	var v map[string]any
	if code, _ := s.call("GET", "/api/v4/version", nil, &v); code != 200 {
		t.Fatalf("normal client: GET /version = %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("normal client: GET /version took %v", d)
	}
}

// aliasBomb is the reported attack: one anchored string of size bytes
// repeated through aliases; the file stays under 1 MB.
func aliasBomb(size, aliases int) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".big: &big %s\n", strings.Repeat("x", size))
	b.WriteString("job:\n  script: echo\n  variables:\n")
	for i := 0; i < aliases; i++ {
		fmt.Fprintf(&b, "    V%d: *big\n", i)
	}
	return b.String()
}

func TestHostileYAMLAmplification(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.Env = append(s.Env, "GOMEMLIMIT=256MiB")
			s.start()
			peak := s.capMemory(t, 3<<30)
			pid := newCIProject(t, s, "bomb")
			bomb := aliasBomb(900<<10, 1500) // 0.9 MB file, 1.3 GB expanded
			if len(bomb) > 1<<20 {
				t.Fatalf("bomb is %d bytes", len(bomb))
			}

			// The lint API answers as GitLab does: valid false, the message.
			var res map[string]any
			code, _ := s.call("POST", "/api/v4/projects/"+pid+"/ci/lint", map[string]any{"content": bomb}, &res)
			if code != 200 || res["valid"] != false || fmt.Sprint(res["errors"]) != "[The parsed YAML is too big]" {
				t.Fatalf("lint: %d %v", code, res["errors"])
			}
			s.servedNormally(t)

			// A push of the same file: the pipeline fails with the YAML
			// error and no job is created.
			pushBranch(t, s, "root/bomb", "main", map[string]string{".gitlab-ci.yml": bomb})
			pl := waitPipeline(t, s, pid, "main", 60*time.Second)
			if pl["status"] != "failed" {
				t.Fatalf("pipeline: %v", pl)
			}
			if jobs := pipelineJobs(t, s, pid, pl); len(jobs) != 0 {
				t.Fatalf("jobs created from a refused config: %v", jobs)
			}
			s.servedNormally(t)
			if mb := peak(); mb > 400 {
				t.Fatalf("server peak RSS %d MiB", mb)
			}
		})
	}
}

var _ = http.StatusOK
var _ url.Values
