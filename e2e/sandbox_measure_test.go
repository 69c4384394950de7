package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestMeasureSandboxJobOverhead compares the mean job duration of a
// 10-stage chain of one-line jobs on one built-in runner, with and without
// the sandbox (docs/benchmarks.md). Run it with
//
//	KILN_MEASURE_SANDBOX=1 go test -count=1 -v ./e2e -run TestMeasureSandboxJobOverhead
func TestMeasureSandboxJobOverhead(t *testing.T) {
	if os.Getenv("KILN_MEASURE_SANDBOX") != "1" {
		t.Skip("a measurement: set KILN_MEASURE_SANDBOX=1")
	}
	requireSandbox(t)
	results := map[string][]float64{}
	for range 5 {
		for _, mode := range []string{"shell", "shell-sandbox"} {
			args := []string{"--builtin-runners", "1"}
			if mode == "shell" {
				args = append(args, "--builtin-runners-unsafe")
			}
			s := newServer(t, "sqlite", args...)
			s.start()
			pid := newCIProject(t, s, "app")
			var b strings.Builder
			b.WriteString("stages: [s0,s1,s2,s3,s4,s5,s6,s7,s8,s9]\n")
			for i := range 10 {
				fmt.Fprintf(&b, "j%d:\n  stage: s%d\n  script: [echo hi]\n", i, i)
			}
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": b.String()})
			pl := waitPipeline(t, s, pid, "main", 120*time.Second)
			if pl["status"] != "success" {
				t.Fatalf("%s: pipeline %v", mode, pl["status"])
			}
			var sum float64
			for _, j := range pipelineJobs(t, s, pid, pl) {
				sum += j["duration"].(float64)
			}
			results[mode] = append(results[mode], sum/10*1000)
			s.stop()
		}
	}
	for mode, ms := range results {
		sort.Float64s(ms)
		t.Logf("%-14s mean job duration per run (ms): %.0f, median %.0f", mode, ms, ms[len(ms)/2])
	}
}
