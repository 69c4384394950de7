package state

import (
	"fmt"
	"time"
)

// Status is a job (or stage, or pipeline) status. The values are GitLab's
// wire names so they can be stored and served through the API verbatim.
type Status string

// Job statuses. A job starts in [Created] and ends in one of the
// completed statuses (see [IsComplete]).
const (
	Created            Status = "created"
	WaitingForResource Status = "waiting_for_resource"
	Preparing          Status = "preparing"
	Pending            Status = "pending"
	Running            Status = "running"
	Success            Status = "success"
	Failed             Status = "failed"
	Canceled           Status = "canceled"
	Canceling          Status = "canceling"
	Skipped            Status = "skipped"
	Manual             Status = "manual"
	Scheduled          Status = "scheduled"
)

// Values of [Job.When]. The empty string means [WhenOnSuccess], which is
// what the YAML default resolves to.
const (
	WhenOnSuccess = "on_success"
	WhenOnFailure = "on_failure"
	WhenAlways    = "always"
	WhenManual    = "manual"
	WhenDelayed   = "delayed"
	WhenNever     = "never"
)

// Need is one entry of a job's `needs:` list, already resolved to a job
// name of the same pipeline (parallel/matrix expansion and cross-project
// needs are the caller's business).
type Need struct {
	Name     string
	Optional bool
}

// Job is the slice of a CI job row the state machine needs.
type Job struct {
	ID       int64
	Name     string
	StageIdx int // position of the job's stage; .pre is lowest, .post highest
	Status   Status

	// When is the resolved `when:` (after rules). "" means on_success.
	When string

	// AllowFailure is the effective allow_failure. The store flips it to
	// true when a job fails with an exit code listed in
	// allow_failure:exit_codes, as GitLab does, so a job's failure is
	// judged by its final value. Manual jobs default to true when `when:
	// manual` is set at job level and to false when it comes from rules.
	AllowFailure bool

	// Needs and NeedsSet: NeedsSet with an empty Needs is `needs: []` (run
	// at once); NeedsSet false means stage ordering.
	Needs    []Need
	NeedsSet bool

	// StartIn is `start_in` for when: delayed.
	StartIn time.Duration
	// ScheduledAt is when a scheduled (delayed) job becomes pending.
	ScheduledAt time.Time

	// Retried marks a row superseded by a retry. Such rows keep their
	// final status for history but take no part in processing or
	// composition, like GitLab's `retried` column.
	Retried bool
}

// Transition is one status change the store must persist. ScheduledAt is
// meaningful for transitions to [Scheduled]; on any other transition the
// store should clear the job's scheduled_at, as GitLab does when a job
// leaves scheduled.
type Transition struct {
	JobID       int64
	From, To    Status
	ScheduledAt time.Time
}

func (t Transition) String() string {
	return fmt.Sprintf("%d %s->%s", t.JobID, t.From, t.To)
}

// IsComplete reports whether s is a terminal status: success, failed,
// canceled or skipped (GitLab's COMPLETED_STATUSES). A non-blocking manual
// job is not complete by status alone; composition treats it as
// "ignored" so it does not hold later stages (see [Job.Done]).
func IsComplete(s Status) bool {
	switch s {
	case Success, Failed, Canceled, Skipped:
		return true
	}
	return false
}

// Blocking reports whether j is a manual job that holds later stages
// until it is played: a manual job with allow_failure false.
func (j Job) Blocking() bool {
	return j.Status == Manual && !j.AllowFailure
}

// Done reports whether j no longer holds stage progression: it is
// complete, or it is a non-blocking manual job that nobody has to play.
func (j Job) Done() bool {
	return IsComplete(j.Status) || (j.Status == Manual && j.AllowFailure)
}

// current reports whether j takes part in processing and composition.
// `when: never` jobs are not supposed to be stored; treating a stray one
// as absent is what GitLab would have done at pipeline creation.
func (j Job) current() bool {
	return !j.Retried && j.When != WhenNever
}

// transitions lists, for each status, the statuses it may move to. It is
// the union of the events of GitLab's CommitStatus/Ci::Build state
// machines (enqueue, enqueue_scheduled, run, skip, drop, success, cancel,
// actionize, schedule, unschedule, process). Completed statuses have no
// way out: a retry creates a new job row instead.
func transitions(from Status) []Status {
	switch from {
	case Created:
		return []Status{WaitingForResource, Preparing, Pending, Skipped, Manual, Scheduled, Success, Failed, Canceled}
	case WaitingForResource:
		return []Status{Preparing, Pending, Skipped, Success, Failed, Canceled}
	case Preparing:
		return []Status{Pending, Skipped, Success, Failed, Canceled}
	case Pending:
		return []Status{Running, Skipped, Success, Failed, Canceled}
	case Running:
		return []Status{Success, Failed, Canceled, Canceling}
	case Canceling:
		// The runner's own result is recorded as canceled (see Finish).
		return []Status{Canceled}
	case Skipped:
		// process (pipeline retry, play of a needed manual job) and enqueue.
		return []Status{Created, WaitingForResource, Preparing, Pending}
	case Manual:
		// play (enqueue), process, drop, cancel.
		return []Status{Created, WaitingForResource, Preparing, Pending, Failed, Canceled}
	case Scheduled:
		// enqueue_scheduled, unschedule, drop, cancel.
		return []Status{WaitingForResource, Preparing, Pending, Manual, Failed, Canceled}
	}
	return nil
}

// Valid reports whether a job may move from one status to another.
// Staying in the same status is not a transition and is reported invalid.
func Valid(from, to Status) bool {
	for _, s := range transitions(from) {
		if s == to {
			return true
		}
	}
	return false
}

// Finish maps a result reported by a runner (success, failed or
// canceled) onto the status to store for a job currently in from, and
// reports whether the report is acceptable. A job in canceling always
// ends canceled whatever the runner says, because the user asked for it
// to stop and its outcome is no longer meaningful (GitLab does the same).
// Reports for jobs that are not executing are refused so that a late or
// duplicated report cannot resurrect a canceled or retried job.
func Finish(from, result Status) (Status, bool) {
	if result != Success && result != Failed && result != Canceled {
		return from, false
	}
	switch from {
	case Canceling:
		return Canceled, true
	case Running:
		return result, true
	}
	return from, false
}
