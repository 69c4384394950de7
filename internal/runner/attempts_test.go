package runner

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

func TestAttemptSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want attemptSettings
		warn []string
	}{
		{"defaults", nil, attemptSettings{1, 1, 1, 1}, nil},
		{"set", map[string]string{"GET_SOURCES_ATTEMPTS": "3", "ARTIFACT_DOWNLOAD_ATTEMPTS": "10", "RESTORE_CACHE_ATTEMPTS": "2", "EXECUTOR_JOB_SECTION_ATTEMPTS": "4"},
			attemptSettings{3, 10, 2, 4}, nil},
		{"not a number", map[string]string{"GET_SOURCES_ATTEMPTS": "three"}, attemptSettings{1, 1, 1, 1},
			[]string{`GET_SOURCES_ATTEMPTS: expected int got "three", using default value: 1`}},
		// Out of range is the stage's error (checked when it runs), not a
		// silent default...
		{"out of range", map[string]string{"GET_SOURCES_ATTEMPTS": "11", "ARTIFACT_DOWNLOAD_ATTEMPTS": "0", "RESTORE_CACHE_ATTEMPTS": "-4"},
			attemptSettings{11, 0, 0, 1}, nil},
		{"huge", map[string]string{"GET_SOURCES_ATTEMPTS": "99999999999999999", "RESTORE_CACHE_ATTEMPTS": "99999999999999999999"}, attemptSettings{11, 1, 1, 1},
			[]string{`RESTORE_CACHE_ATTEMPTS: expected int got "99999999999999999999", using default value: 1`}},
		// ...except for the executor section, which falls back with a warning.
		{"executor section", map[string]string{"EXECUTOR_JOB_SECTION_ATTEMPTS": "0"}, attemptSettings{1, 1, 1, 1},
			[]string{"EXECUTOR_JOB_SECTION_ATTEMPTS: number of attempts out of the range [1, 10], using default 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &jobRun{vars: tc.vars}
			got, warn := j.attemptSettings()
			if got != tc.want {
				t.Errorf("settings = %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(warn, tc.warn) {
				t.Errorf("warnings = %q, want %q", warn, tc.warn)
			}
		})
	}
	for _, n := range []int{0, 11, -1} {
		if err := checkAttempts("get_sources", n); err == nil || err.Error() != "number of attempts out of the range [1, 10] for stage: get_sources" {
			t.Errorf("checkAttempts(%d) = %v", n, err)
		}
	}
	for _, n := range []int{1, 10} {
		if err := checkAttempts("get_sources", n); err != nil {
			t.Errorf("checkAttempts(%d) = %v", n, err)
		}
	}
}

// TestAgentAttemptsOutOfRangeFailJob: an attempts count outside 1-10 fails
// the job before any script runs, as in GitLab Runner, even for a stage
// the job does not need (no cache here).
func TestAgentAttemptsOutOfRangeFailJob(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(131, "echo script-ran")
	job.Variables = append(job.Variables, client.Variable{Key: "RESTORE_CACHE_ATTEMPTS", Value: "11"})
	fs.addJob(job)
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 131, 20*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureRunnerSystem ||
		strings.Contains(trace, "script-ran\n") || !strings.Contains(trace, "number of attempts out of the range [1, 10] for stage: restore_cache") {
		t.Errorf("final = %+v\n%s", final, trace)
	}
}
