package state

import (
	"maps"
	"slices"
	"testing"
)

// The cases below port /work/shared/conformance/gcl/*/EXPECTED.md: each
// job list is what the .gitlab-ci.yml yields after rules and defaults,
// hand-built; waves are the groups of jobs that start together when
// every running job finishes at once.
func TestConformanceWaves(t *testing.T) {
	tests := []struct {
		name     string
		jobs     []Job
		results  map[string]Status
		waves    [][]string
		final    map[string]Status // only the listed jobs are checked
		pipeline Status
		warnings bool
	}{
		{
			// premium-job's cross-project need is not a scheduling need
			// (Kiln ignores it like gitlab-ci-local), so it is a plain
			// stage-scheduled test job.
			name: "01-needs-sequence",
			jobs: build(
				job("deploy-job", stDeploy, needs("test-job")),
				job("test-job", stTest, needs("build-job")),
				job("build-job", stBuild, needs("pre-job")),
				job("pre-job", stPre),
				job("no-needs-job", stTest),
				job("premium-job", stTest),
			),
			waves: [][]string{
				{"pre-job"},
				{"build-job"},
				{"no-needs-job", "premium-job", "test-job"},
				{"deploy-job"},
			},
			pipeline: Success,
		},
		{
			name: "02-needs-same-stage",
			jobs: build(
				job("test-job", stTest, needs("build-job")),
				job("build-job", stTest),
			),
			waves:    [][]string{{"build-job"}, {"test-job"}},
			pipeline: Success,
		},
		{
			// never-job is not in the pipeline; test-job is refused at
			// creation (TestCheckNeeds), test-job-optional drops its need
			// and behaves like `needs: []`.
			name: "04-never-needs/optional",
			jobs: build(
				job("test-job-optional", stTest, optionalNeed("never-job")),
			),
			waves:    [][]string{{"test-job-optional"}},
			pipeline: Success,
		},
		{
			// A stray when:never row counts as absent.
			name: "04-never-needs/stored never job",
			jobs: build(
				job("never-job", stPre, when(WhenNever)),
				job("test-job-optional", stTest, optionalNeed("never-job")),
			),
			waves:    [][]string{{"test-job-optional"}},
			final:    map[string]Status{"never-job": Created},
			pipeline: Success,
		},
		{
			name: "05-when-on-failure",
			jobs: build(
				job("pre-job", stPre),
				job("build-job", stBuild),
				job("test-job", stTest, needs("build-job"), when(WhenOnFailure)),
				job("deploy-job", stDeploy, needs("pre-job"), when(WhenOnFailure)),
			),
			results: map[string]Status{"build-job": Failed},
			waves:   [][]string{{"pre-job"}, {"build-job"}, {"test-job"}},
			final: map[string]Status{
				"build-job":  Failed,
				"test-job":   Success,
				"deploy-job": Skipped,
			},
			pipeline: Failed,
		},
		{
			name: "06-when-always",
			jobs: build(
				job("build-job", stBuild),
				job("test-job", stTest, when(WhenAlways)),
			),
			results:  map[string]Status{"build-job": Failed},
			waves:    [][]string{{"build-job"}, {"test-job"}},
			final:    map[string]Status{"test-job": Success},
			pipeline: Failed,
		},
		{
			// rules: when: manual -> allow_failure false (blocking). Nobody
			// plays them, so the pipeline rests blocked with everything
			// behind the manual jobs still created (see TestManualBlocking
			// for playing them).
			name: "07-manual/unplayed",
			jobs: build(
				job("pre-job", stPre, when(WhenManual)),
				job("build-job", stBuild, when(WhenManual)),
				job("test-job", stTest, needs("pre-job")),
				job("deploy-job", stTest),
			),
			waves: nil,
			final: map[string]Status{
				"pre-job":    Manual,
				"build-job":  Created,
				"test-job":   Created,
				"deploy-job": Created,
			},
			pipeline: Manual,
		},
		{
			// allow_failure values are the final ones: the store sets
			// allow_failure when the exit code is in exit_codes, and
			// rules:allow_failure has already overridden the job's.
			name: "09-script-failures",
			jobs: build(
				job("test-job", stTest),
				job("test-job-after-script", stTest),
				job("allow-failure-job", stTest, allowFailure),
				job("allow-failure-after-script", stTest, allowFailure),
				job("deploy-job", stDeploy, needs("test-job")),
				job("exit_code[number] allowed", stTest, allowFailure),
				job("exit_code[number] not allowed", stTest),
				job("exit_code[number[]] allowed", stTest, allowFailure),
				job("exit_code[number[]] not allowed", stTest),
				job("rules:allow_failure precedence", stTest),
				job("rules:without allow_failure", stTest, allowFailure),
			),
			results: map[string]Status{
				"test-job":                        Failed,
				"test-job-after-script":           Failed,
				"allow-failure-job":               Failed,
				"allow-failure-after-script":      Failed,
				"exit_code[number] allowed":       Failed,
				"exit_code[number] not allowed":   Failed,
				"exit_code[number[]] allowed":     Failed,
				"exit_code[number[]] not allowed": Failed,
				"rules:allow_failure precedence":  Failed,
				"rules:without allow_failure":     Failed,
			},
			waves: [][]string{{
				"allow-failure-after-script",
				"allow-failure-job",
				"exit_code[number[]] allowed",
				"exit_code[number[]] not allowed",
				"exit_code[number] allowed",
				"exit_code[number] not allowed",
				"rules:allow_failure precedence",
				"rules:without allow_failure",
				"test-job",
				"test-job-after-script",
			}},
			final:    map[string]Status{"deploy-job": Skipped},
			pipeline: Failed,
			warnings: true,
		},
		{
			// Same file with only the allowed failures in it: the
			// pipeline passes with warnings and later stages run.
			name: "09-script-failures/allowed only",
			jobs: build(
				job("allow-failure-job", stTest, allowFailure),
				job("exit_code[number] allowed", stTest, allowFailure),
				job("deploy-job", stDeploy),
			),
			results: map[string]Status{
				"allow-failure-job":         Failed,
				"exit_code[number] allowed": Failed,
			},
			waves: [][]string{
				{"allow-failure-job", "exit_code[number] allowed"},
				{"deploy-job"},
			},
			pipeline: Success,
			warnings: true,
		},
		{
			name: "24-needs-dependencies/needs-empty",
			jobs: build(
				job("one", stTest),
				job("two", stTest),
				job("deploy-job", stDeploy, needs()),
			),
			waves:    [][]string{{"deploy-job", "one", "two"}},
			pipeline: Success,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, tt.jobs)
			if got := s.waves(tt.results); !slices.EqualFunc(got, tt.waves, slices.Equal) {
				t.Errorf("waves = %q, want %q", got, tt.waves)
			}
			got := s.statuses()
			for name, want := range tt.final {
				if got[name] != want {
					t.Errorf("%s = %s, want %s", name, got[name], want)
				}
			}
			if tt.final == nil && tt.results == nil {
				for name, st := range got {
					if st != Success {
						t.Errorf("%s = %s, want success", name, st)
					}
				}
			}
			st, warn := PipelineStatus(s.jobs)
			if st != tt.pipeline || warn != tt.warnings {
				t.Errorf("PipelineStatus = %s, %v; want %s, %v (jobs %v)", st, warn, tt.pipeline, tt.warnings, got)
			}
		})
	}
}

// step is one moment of a scenario: the store's actions, then an
// Advance whose transitions must be exactly want, in order.
type step struct {
	play     string
	run      []string
	finish   map[string]Status
	after    int // minutes since the start of the scenario
	want     []string
	pipeline Status // checked when set, after want is applied
}

func runSteps(t *testing.T, s *sim, steps []step) {
	t.Helper()
	for n, st := range steps {
		if st.play != "" {
			trs, err := Play(s.jobs, s.jobs[s.idx(st.play)].ID)
			if err != nil {
				t.Fatalf("step %d: %v", n, err)
			}
			s.apply(trs)
		}
		for _, name := range st.run {
			s.run(name)
		}
		for _, name := range slices.Sorted(maps.Keys(st.finish)) {
			s.finish(name, st.finish[name])
		}
		s.now = epoch().Add(timeMinutes(st.after))
		if got := s.advance(); !slices.Equal(got, st.want) {
			t.Fatalf("step %d: Advance = %q, want %q", n, got, st.want)
		}
		if st.pipeline != "" {
			if got, _ := PipelineStatus(s.jobs); got != st.pipeline {
				t.Fatalf("step %d: PipelineStatus = %s, want %s", n, got, st.pipeline)
			}
		}
	}
}

func TestConformanceSteps(t *testing.T) {
	tests := []struct {
		name  string
		jobs  []Job
		steps []step
	}{
		{
			// With needs, deploy-job follows test-job without waiting for
			// the rest of the test stage.
			name: "01-needs-sequence/dag does not wait for stage",
			jobs: build(
				job("deploy-job", stDeploy, needs("test-job")),
				job("test-job", stTest, needs("build-job")),
				job("build-job", stBuild, needs("pre-job")),
				job("pre-job", stPre),
				job("no-needs-job", stTest),
			),
			steps: []step{
				{want: []string{"pre-job created->pending"}, pipeline: Pending},
				{run: []string{"pre-job"}, finish: map[string]Status{"pre-job": Success},
					want: []string{"build-job created->pending"}, pipeline: Running},
				{run: []string{"build-job"}, finish: map[string]Status{"build-job": Success},
					want: []string{"test-job created->pending", "no-needs-job created->pending"}},
				{run: []string{"test-job", "no-needs-job"}, finish: map[string]Status{"test-job": Success},
					want: []string{"deploy-job created->pending"}},
				{finish: map[string]Status{"no-needs-job": Success}, want: nil, pipeline: Running},
			},
		},
		{
			name: "02-needs-same-stage",
			jobs: build(
				job("test-job", stTest, needs("build-job")),
				job("build-job", stTest),
			),
			steps: []step{
				{want: []string{"build-job created->pending"}},
				{run: []string{"build-job"}, want: nil},
				{finish: map[string]Status{"build-job": Success}, want: []string{"test-job created->pending"}},
			},
		},
		{
			// The skip of deploy-job is decided as soon as its only need
			// succeeds, before the failing build even starts.
			name: "05-when-on-failure",
			jobs: build(
				job("pre-job", stPre),
				job("build-job", stBuild),
				job("test-job", stTest, needs("build-job"), when(WhenOnFailure)),
				job("deploy-job", stDeploy, needs("pre-job"), when(WhenOnFailure)),
			),
			steps: []step{
				{want: []string{"pre-job created->pending"}},
				{run: []string{"pre-job"}, finish: map[string]Status{"pre-job": Success},
					want: []string{"build-job created->pending", "deploy-job created->skipped"}},
				{run: []string{"build-job"}, finish: map[string]Status{"build-job": Failed},
					want: []string{"test-job created->pending"}, pipeline: Running},
				{run: []string{"test-job"}, finish: map[string]Status{"test-job": Success},
					want: nil, pipeline: Failed},
			},
		},
		{
			name: "12-rules-needs/main uses build-production",
			jobs: build(
				job("build-dev", stBuild),
				job("build-production", stBuild),
				job("test-job", stTest, needs("build-production")),
			),
			steps: []step{
				{want: []string{"build-dev created->pending", "build-production created->pending"}},
				{run: []string{"build-dev", "build-production"}, finish: map[string]Status{"build-production": Success},
					want: []string{"test-job created->pending"}},
				{finish: map[string]Status{"build-dev": Success}, want: nil},
			},
		},
		{
			name: "12-rules-needs/other branch uses build-dev",
			jobs: build(
				job("build-dev", stBuild),
				job("build-production", stBuild),
				job("test-job", stTest, needs("build-dev")),
			),
			steps: []step{
				{want: []string{"build-dev created->pending", "build-production created->pending"}},
				{run: []string{"build-dev", "build-production"}, finish: map[string]Status{"build-production": Success},
					want: nil},
				{finish: map[string]Status{"build-dev": Success}, want: []string{"test-job created->pending"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newSim(t, tt.jobs), tt.steps)
		})
	}
}

// TestManualBlocking plays 07-manual's blocking manual jobs.
func TestManualBlocking(t *testing.T) {
	jobs := build(
		job("pre-job", stPre, when(WhenManual)),
		job("build-job", stBuild, when(WhenManual)),
		job("test-job", stTest, needs("pre-job")),
		job("deploy-job", stTest),
	)
	runSteps(t, newSim(t, jobs), []step{
		{want: []string{"pre-job created->manual"}, pipeline: Manual},
		{want: nil, pipeline: Manual},
		{play: "pre-job", want: nil, pipeline: Pending},
		{run: []string{"pre-job"}, finish: map[string]Status{"pre-job": Success},
			want: []string{"build-job created->manual", "test-job created->pending"}, pipeline: Running},
		{run: []string{"test-job"}, finish: map[string]Status{"test-job": Success},
			want: nil, pipeline: Manual},
		{play: "build-job", run: []string{"build-job"}, finish: map[string]Status{"build-job": Success},
			want: []string{"deploy-job created->pending"}},
		{run: []string{"deploy-job"}, finish: map[string]Status{"deploy-job": Success},
			want: nil, pipeline: Success},
	})
}

// TestManualNonBlocking covers job-level `when: manual` (allow_failure
// defaults to true): later stages proceed, a job needing it is skipped
// until it is played, and the pipeline can succeed without playing it.
func TestManualNonBlocking(t *testing.T) {
	jobs := build(
		job("deploy", stBuild, when(WhenManual), allowFailure),
		job("smoke", stTest, needs("deploy")),
		job("report", stTest),
	)
	runSteps(t, newSim(t, jobs), []step{
		{want: []string{"deploy created->manual", "smoke created->skipped", "report created->pending"}},
		{run: []string{"report"}, finish: map[string]Status{"report": Success}, want: nil, pipeline: Success},
		{play: "deploy", want: nil, pipeline: Running},
		{run: []string{"deploy"}, want: nil},
		{finish: map[string]Status{"deploy": Success}, want: []string{"smoke created->pending"}},
		{run: []string{"smoke"}, finish: map[string]Status{"smoke": Success}, want: nil, pipeline: Success},
	})
}

func TestDelayed(t *testing.T) {
	jobs := build(
		job("build", stBuild),
		job("rollout", stDeploy, startIn(30*timeMinutes(1))),
		job("verify", stDeploy+1),
	)
	s := newSim(t, jobs)
	runSteps(t, s, []step{
		{want: []string{"build created->pending"}},
		{run: []string{"build"}, finish: map[string]Status{"build": Success}, after: 5,
			want: []string{"rollout created->scheduled"}, pipeline: Scheduled},
	})
	if got, want := s.jobs[s.idx("rollout")].ScheduledAt, epoch().Add(35*timeMinutes(1)); !got.Equal(want) {
		t.Fatalf("ScheduledAt = %v, want %v", got, want)
	}
	if at, ok := NextWakeup(s.jobs); !ok || !at.Equal(epoch().Add(35*timeMinutes(1))) {
		t.Fatalf("NextWakeup = %v, %v", at, ok)
	}
	runSteps(t, s, []step{
		{after: 20, want: nil, pipeline: Scheduled},
		{after: 35, want: []string{"rollout scheduled->pending"}, pipeline: Running},
		{run: []string{"rollout"}, finish: map[string]Status{"rollout": Success}, after: 36,
			want: []string{"verify created->pending"}},
	})
	if _, ok := NextWakeup(s.jobs); ok {
		t.Fatal("NextWakeup with nothing scheduled reported a time")
	}
}

// TestDelayedAfterFailure: a delayed job is on_success-like.
func TestDelayedAfterFailure(t *testing.T) {
	jobs := build(
		job("build", stBuild),
		job("rollout", stDeploy, startIn(timeMinutes(1))),
	)
	runSteps(t, newSim(t, jobs), []step{
		{want: []string{"build created->pending"}},
		{run: []string{"build"}, finish: map[string]Status{"build": Failed},
			want: []string{"rollout created->skipped"}, pipeline: Failed},
	})
}
