package state

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// jobsOf builds one stage of current jobs from status/allow_failure pairs.
func jobsOf(entries ...any) []Job {
	var jobs []Job
	for i := 0; i < len(entries); i++ {
		j := Job{ID: int64(len(jobs) + 1), Status: entries[i].(Status)}
		if i+1 < len(entries) {
			if b, ok := entries[i+1].(bool); ok {
				j.AllowFailure = b
				i++
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}

const af = true // allow_failure, for readability of jobsOf calls

func TestPipelineStatus(t *testing.T) {
	tests := []struct {
		name     string
		jobs     []Job
		want     Status
		warnings bool
	}{
		{"all success", jobsOf(Success, Success), Success, false},
		{"success and skipped", jobsOf(Success, Skipped), Success, false},
		{"skipped only", jobsOf(Skipped, Skipped), Skipped, false},
		{"allowed failure warns", jobsOf(Success, Failed, af), Success, true},
		{"allowed failure only", jobsOf(Failed, af), Success, true},
		{"allowed cancel warns", jobsOf(Success, Canceled, af), Success, true},
		{"failure", jobsOf(Success, Failed), Failed, false},
		{"failure and allowed failure", jobsOf(Failed, Failed, af), Failed, true},
		{"canceled", jobsOf(Success, Canceled, Skipped), Canceled, false},
		{"failed beats canceled", jobsOf(Canceled, Failed), Failed, false},
		{"running beats pending", jobsOf(Pending, Running), Running, false},
		{"pending and created", jobsOf(Pending, Created), Pending, false},
		{"pending after success is running", jobsOf(Success, Pending), Running, false},
		{"created only", jobsOf(Created, Created), Created, false},
		{"created after success is running", jobsOf(Success, Created), Running, false},
		{"created after failure is running", jobsOf(Failed, Created), Running, false},
		{"blocking manual", jobsOf(Success, Manual, Created), Manual, false},
		{"running beats blocking manual", jobsOf(Running, Manual), Running, false},
		{"non-blocking manual ignored", jobsOf(Success, Manual, af), Success, false},
		{"non-blocking manual only", jobsOf(Manual, af), Skipped, false},
		{"scheduled", jobsOf(Success, Scheduled, Created), Scheduled, false},
		{"blocking manual beats scheduled", jobsOf(Scheduled, Manual), Manual, false},
		{"canceling", jobsOf(Success, Canceling, Canceled), Canceling, false},
		{"canceling beats failed", jobsOf(Failed, Canceling), Canceling, false},
		{"preparing only", jobsOf(Preparing), Preparing, false},
		{"waiting for resource", jobsOf(Success, WaitingForResource), WaitingForResource, false},
		{"no jobs", nil, Success, false},
		{"retried failure ignored", append(jobsOf(Success), Job{ID: 9, Status: Failed, Retried: true}), Success, false},
		{"retried allowed failure no warning", append(jobsOf(Success), Job{ID: 9, Status: Failed, AllowFailure: true, Retried: true}), Success, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warn := PipelineStatus(tt.jobs)
			if got != tt.want || warn != tt.warnings {
				t.Errorf("PipelineStatus = %s, %v; want %s, %v", got, warn, tt.want, tt.warnings)
			}
		})
	}
}

func TestStageStatus(t *testing.T) {
	jobs := build(
		job("a", stBuild, status(Success)),
		job("b", stTest, status(Failed), allowFailure),
		job("c", stTest, status(Running)),
	)
	if got, warn := StageStatus(jobs, stBuild); got != Success || warn {
		t.Errorf("build stage = %s, %v", got, warn)
	}
	if got, warn := StageStatus(jobs, stTest); got != Running || !warn {
		t.Errorf("test stage = %s, %v", got, warn)
	}
}

func TestIsCompleteAndDone(t *testing.T) {
	all := []Status{Created, WaitingForResource, Preparing, Pending, Running, Success, Failed, Canceled, Canceling, Skipped, Manual, Scheduled}
	for _, s := range all {
		want := s == Success || s == Failed || s == Canceled || s == Skipped
		if IsComplete(s) != want {
			t.Errorf("IsComplete(%s) = %v", s, !want)
		}
		if (Job{Status: s}).Done() != want {
			t.Errorf("blocking Job{%s}.Done() = %v", s, !want)
		}
		if got := (Job{Status: s, AllowFailure: true}).Done(); got != (want || s == Manual) {
			t.Errorf("non-blocking Job{%s}.Done() = %v", s, got)
		}
	}
	if !(Job{Status: Manual}).Blocking() || (Job{Status: Manual, AllowFailure: true}).Blocking() {
		t.Error("Blocking: manual without allow_failure blocks, with it does not")
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		from, to Status
		want     bool
	}{
		{Created, Pending, true},
		{Created, Manual, true},
		{Created, Scheduled, true},
		{Created, Skipped, true},
		{Created, Canceled, true},
		{Created, Running, false},
		{Pending, Running, true},
		{Pending, Canceled, true},
		{Running, Success, true},
		{Running, Failed, true},
		{Running, Canceling, true},
		{Running, Canceled, true},
		{Running, Pending, false},
		{Canceling, Canceled, true},
		{Canceling, Success, false},
		{Canceling, Failed, false},
		{Canceled, Success, false},
		{Canceled, Running, false},
		{Success, Failed, false},
		{Failed, Pending, false},
		{Failed, Created, false},
		{Skipped, Created, true},
		{Skipped, Success, false},
		{Manual, Pending, true},
		{Manual, Canceled, true},
		{Manual, Running, false},
		{Scheduled, Pending, true},
		{Scheduled, Manual, true},
		{Scheduled, Running, false},
		{Pending, Pending, false},
		{"bogus", Pending, false},
	}
	for _, tt := range tests {
		if got := Valid(tt.from, tt.to); got != tt.want {
			t.Errorf("Valid(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestFinish(t *testing.T) {
	tests := []struct {
		from, result, want Status
		ok                 bool
	}{
		{Running, Success, Success, true},
		{Running, Failed, Failed, true},
		{Running, Canceled, Canceled, true},
		{Canceling, Success, Canceled, true},
		{Canceling, Failed, Canceled, true},
		{Canceled, Success, Canceled, false},
		{Success, Failed, Success, false},
		{Pending, Success, Pending, false},
		{Running, Skipped, Running, false},
	}
	for _, tt := range tests {
		got, ok := Finish(tt.from, tt.result)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Finish(%s, %s) = %s, %v; want %s, %v", tt.from, tt.result, got, ok, tt.want, tt.ok)
		}
		if ok && !Valid(tt.from, got) {
			t.Errorf("Finish(%s, %s) = %s is not a valid transition", tt.from, tt.result, got)
		}
	}
}

func TestCancel(t *testing.T) {
	jobs := build(
		job("done", stBuild, status(Success)),
		job("broken", stBuild, status(Failed)),
		job("skip", stBuild, status(Skipped)),
		job("run", stTest, status(Running)),
		job("queued", stTest, status(Pending)),
		job("play", stTest, status(Manual), allowFailure),
		job("later", stDeploy, status(Scheduled)),
		job("next", stDeploy+1),
		job("stopping", stTest, status(Canceling)),
		job("old", stTest, status(Running), retried),
	)
	s := newSim(t, jobs)
	got := s.apply(Cancel(s.jobs))
	want := []string{
		"run running->canceling",
		"queued pending->canceled",
		"play manual->canceled",
		"later scheduled->canceled",
		"next created->canceled",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Cancel = %q, want %q", got, want)
	}
	if st, _ := PipelineStatus(s.jobs); st != Canceling {
		t.Errorf("pipeline while runners stop = %s, want canceling", st)
	}
	s.finish("run", Success)
	s.finish("stopping", Failed)
	if st, _ := PipelineStatus(s.jobs); st != Failed {
		t.Errorf("pipeline after cancel = %s, want failed (a job had failed)", st)
	}
	if got := s.advance(); got != nil {
		t.Errorf("Advance after cancel = %q", got)
	}
}

func TestCancelledPipelineStatus(t *testing.T) {
	s := newSim(t, build(job("a", stBuild, status(Success)), job("b", stTest, status(Running)), job("c", stDeploy)))
	s.apply(Cancel(s.jobs))
	s.finish("b", Failed)
	if st, _ := PipelineStatus(s.jobs); st != Canceled {
		t.Errorf("pipeline = %s, want canceled", st)
	}
}

// TestRetry runs a pipeline whose test job fails, retries it, and lets
// the clone succeed: the skipped deploy job is reset and runs.
func TestRetry(t *testing.T) {
	s := newSim(t, build(
		job("build", stBuild),
		job("test", stTest),
		job("lint", stTest, allowFailure),
		job("deploy", stDeploy),
		job("cleanup", stDeploy, when(WhenOnFailure)),
		job("flaky", stTest, status(Failed), retried),
	))
	s.waves(map[string]Status{"test": Failed, "lint": Failed})
	if st, _ := PipelineStatus(s.jobs); st != Failed {
		t.Fatalf("pipeline = %s, want failed", st)
	}

	clone, reset := RetryPlan(s.jobs)
	ids := func(names ...string) []int64 {
		var out []int64
		for _, n := range names {
			out = append(out, s.jobs[s.idx(n)].ID)
		}
		return out
	}
	if want := ids("test", "lint"); !slices.Equal(clone, want) {
		t.Fatalf("clone = %v, want %v", clone, want)
	}
	if want := ids("deploy"); !slices.Equal(reset, want) {
		t.Fatalf("reset = %v, want %v (cleanup ran and succeeded)", reset, want)
	}

	// The store's part: clone as created rows, mark originals retried.
	for _, id := range clone {
		i := s.byID(id)
		c := s.jobs[i]
		c.ID, c.Status = int64(100+i), Created
		s.jobs[i].Retried = true
		s.jobs = append(s.jobs, c)
	}
	for _, id := range reset {
		s.apply([]Transition{{JobID: id, From: Skipped, To: Created}})
	}
	if st, _ := PipelineStatus(s.jobs); st != Running {
		t.Fatalf("pipeline after retry = %s, want running", st)
	}
	s.waves(map[string]Status{"lint": Failed})
	got := s.statuses()
	if got["test"] != Success || got["deploy"] != Success || got["cleanup"] != Success {
		t.Fatalf("after retry: %v", got)
	}
	if st, warn := PipelineStatus(s.jobs); st != Success || !warn {
		t.Fatalf("pipeline = %s, %v; want success with warnings", st, warn)
	}
}

func TestRetryPlanResetsEverySkipped(t *testing.T) {
	jobs := build(
		job("a", stBuild, status(Canceled)),
		job("b", stBuild, needs("z"), status(Skipped)),
		job("c", stTest, status(Skipped)),
		job("d", stTest, status(Manual)),
		job("e", stTest, status(Success)),
	)
	clone, reset := RetryPlan(jobs)
	if !slices.Equal(clone, []int64{1}) || !slices.Equal(reset, []int64{2, 3}) {
		t.Fatalf("RetryPlan = %v, %v", clone, reset)
	}
}

func TestPlay(t *testing.T) {
	jobs := build(
		job("gate", stBuild, when(WhenManual), allowFailure, status(Manual)),
		job("same-stage", stBuild, status(Skipped)),
		job("needs-gate", stBuild, needs("gate"), status(Skipped)),
		job("transitive", stTest, needs("needs-gate"), status(Skipped)),
		job("later", stDeploy, status(Skipped)),
		job("earlier", stPre, status(Skipped)),
		job("done", stDeploy, status(Success)),
	)
	s := newSim(t, jobs)
	trs, err := Play(s.jobs, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := s.apply(trs)
	want := []string{
		"gate manual->pending",
		"needs-gate skipped->created",
		"transitive skipped->created",
		"later skipped->created",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Play = %q, want %q", got, want)
	}
	for _, id := range []int64{1, 7, 42} {
		if _, err := Play(s.jobs, id); !errors.Is(err, ErrNotPlayable) {
			t.Errorf("Play(%d) error = %v, want ErrNotPlayable", id, err)
		}
	}
}

func TestCheckNeeds(t *testing.T) {
	// 04-never-needs: never-job is excluded by rules.
	err := CheckNeeds(build(
		job("test-job", stTest, needs("never-job")),
		job("test-job-optional", stTest, optionalNeed("never-job")),
	))
	const msg = "'test-job' job needs 'never-job' job, but 'never-job' is not in any previous stage"
	if err == nil || err.Error() != msg {
		t.Fatalf("CheckNeeds = %v, want %q", err, msg)
	}
	if err := CheckNeeds(build(
		job("build", stBuild),
		job("unit", stTest, needs("build", "lint")),
		job("lint", stTest),
	)); err != nil {
		t.Fatalf("same and earlier stage needs: %v", err)
	}
	err = CheckNeeds(build(
		job("build", stBuild, needs("deploy")),
		job("deploy", stDeploy),
		job("old", stTest, retried),
		job("x", stTest, needs("old")),
	))
	if err == nil || !strings.Contains(err.Error(), "'build' job needs 'deploy'") || !strings.Contains(err.Error(), "'x' job needs 'old'") {
		t.Fatalf("CheckNeeds = %v", err)
	}
}

// TestAdvanceDecisions pins single-pass decisions that the conformance
// configs do not reach.
func TestAdvanceDecisions(t *testing.T) {
	tests := []struct {
		name string
		jobs []Job
		want []string
	}{
		{
			name: "first stage: on_failure skipped, always runs",
			jobs: build(
				job("a", stBuild),
				job("f", stBuild, when(WhenOnFailure)),
				job("w", stBuild, when(WhenAlways)),
			),
			want: []string{"a created->pending", "f created->skipped", "w created->pending"},
		},
		{
			name: "skips cascade through stages and needs in one pass",
			jobs: build(
				job("build", stBuild, status(Failed)),
				job("test", stTest),
				job("deploy", stDeploy),
				job("after-deploy", stDeploy, needs("deploy")),
				job("notify", stDeploy+1, when(WhenOnFailure)),
			),
			want: []string{
				"test created->skipped",
				"deploy created->skipped",
				"after-deploy created->skipped",
				"notify created->pending",
			},
		},
		{
			// Skipped prior stages count as success for stage
			// scheduling, but a skipped need skips its dependents.
			name: "skipped stage vs skipped need",
			jobs: build(
				job("opt", stBuild, status(Skipped)),
				job("stage", stTest),
				job("dag", stTest, needs("opt")),
				job("dag-always", stTest, needs("opt"), when(WhenAlways)),
			),
			want: []string{"stage created->pending", "dag created->skipped", "dag-always created->pending"},
		},
		{
			// GitLab lets no `when` run after a canceled prerequisite,
			// not even always.
			name: "canceled prerequisite",
			jobs: build(
				job("build", stBuild, status(Canceled)),
				job("next", stTest),
				job("always", stTest, when(WhenAlways)),
				job("on-failure", stTest, when(WhenOnFailure)),
			),
			want: []string{"next created->skipped", "always created->skipped", "on-failure created->skipped"},
		},
		{
			name: "allowed failure does not block stage or needs",
			jobs: build(
				job("lint", stBuild, status(Failed), allowFailure),
				job("stage", stTest),
				job("dag", stTest, needs("lint")),
				job("on-failure", stTest, needs("lint"), when(WhenOnFailure)),
			),
			want: []string{"stage created->pending", "dag created->pending", "on-failure created->skipped"},
		},
		{
			name: "running prerequisites hold jobs",
			jobs: build(
				job("build", stBuild, status(Running)),
				job("stage", stTest),
				job("dag", stTest, needs("build")),
				job("free", stTest, needs()),
			),
			want: []string{"free created->pending"},
		},
		{
			name: "same-stage needs are ordered regardless of input order",
			jobs: build(
				job("c", stTest, needs("b")),
				job("b", stTest, needs("a")),
				job("a", stTest, status(Failed)),
			),
			want: []string{"b created->skipped", "c created->skipped"},
		},
		{
			name: "retried rows are inert",
			jobs: build(
				job("build", stBuild, status(Failed), retried),
				job("build", stBuild, status(Success)),
				job("stale", stBuild, retried),
				job("test", stTest, needs("build")),
			),
			want: []string{"test created->pending"},
		},
		{
			name: "unknown when never runs",
			jobs: build(job("odd", stBuild, when("sometimes"))),
			want: []string{"odd created->skipped"},
		},
		{
			name: "needs cycle does not hang",
			jobs: build(
				job("x", stTest, needs("y")),
				job("y", stTest, needs("x")),
			),
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, tt.jobs)
			if got := s.advance(); !slices.Equal(got, tt.want) {
				t.Errorf("Advance = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAdvanceIdempotent: applying Advance's transitions and calling it
// again yields nothing new until something else changes.
func TestAdvanceIdempotent(t *testing.T) {
	s := newSim(t, build(
		job("a", stBuild),
		job("m", stBuild, when(WhenManual)),
		job("d", stTest, startIn(timeMinutes(10))),
	))
	if s.advance() == nil {
		t.Fatal("first Advance did nothing")
	}
	if got := s.advance(); got != nil {
		t.Fatalf("second Advance = %q", got)
	}
}
