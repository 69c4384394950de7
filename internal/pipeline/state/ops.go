package state

import (
	"errors"
	"fmt"
)

// Cancel returns the transitions that cancel a pipeline. Jobs that have
// not reached a runner (created, waiting_for_resource, preparing,
// pending, scheduled, manual) become canceled at once. Running jobs
// become canceling rather than canceled: Kiln's runners support graceful
// cancellation (they run after_script and report back), which is the
// case where GitLab also uses canceling; the store completes
// canceling -> canceled when the runner reports (see [Finish]).
//
// Manual jobs are canceled too. GitLab's CancelPipelineService leaves
// them playable; Kiln cancels them so a canceled pipeline cannot later
// deploy by a stray click and its status settles to canceled instead of
// reverting to manual.
func Cancel(jobs []Job) []Transition {
	var out []Transition
	for _, j := range jobs {
		if !j.current() {
			continue
		}
		switch j.Status {
		case Created, WaitingForResource, Preparing, Pending, Scheduled, Manual:
			out = append(out, Transition{JobID: j.ID, From: j.Status, To: Canceled})
		case Running:
			out = append(out, Transition{JobID: j.ID, From: Running, To: Canceling})
		}
	}
	return out
}

// RetryPlan says how to retry a pipeline, as GitLab's
// RetryPipelineService does: every current failed or canceled job is
// cloned (the store inserts a created copy and marks the original
// Retried), and every current skipped job is reset to created. The store
// then calls [Advance], which re-decides the reset jobs: those that were
// skipped only because of the retried failures now wait for the clones,
// the others are skipped again.
//
// GitLab resets every skipped job, not only those in later stages; the
// outcome is the same because Advance re-skips what still has to be
// skipped, and resetting all of them also revives jobs that were skipped
// through needs of an earlier-stage job.
func RetryPlan(jobs []Job) (clone []int64, reset []int64) {
	for _, j := range jobs {
		if !j.current() {
			continue
		}
		switch j.Status {
		case Failed, Canceled:
			clone = append(clone, j.ID)
		case Skipped:
			reset = append(reset, j.ID)
		}
	}
	return clone, reset
}

// Error is the type of this package's sentinel errors; being a string
// type lets them be constants rather than mutable package variables.
type Error string

func (e Error) Error() string { return string(e) }

// ErrNotPlayable is returned by [Play] for a job that is not a current
// manual job.
const ErrNotPlayable Error = "job is not a manual job waiting to be played"

// Play returns the transitions for a user playing the manual job with the
// given id: the job becomes pending, and skipped jobs that depend on it
// (by needs, transitively, or by being in a later stage) are reset to
// created, as GitLab's ResetSkippedJobsService does. That is what makes
// `needs:` on a non-blocking manual job work: the dependent was skipped
// while the manual job was unplayed and comes back when it is played.
// The store applies the transitions and then calls [Advance].
func Play(jobs []Job, id int64) ([]Transition, error) {
	at := -1
	for i, j := range jobs {
		if j.ID == id && j.current() {
			at = i
		}
	}
	if at < 0 || jobs[at].Status != Manual {
		return nil, fmt.Errorf("play job %d: %w", id, ErrNotPlayable)
	}
	played := jobs[at]
	out := []Transition{{JobID: played.ID, From: Manual, To: Pending}}

	// Transitive closure over needs, starting from the played job.
	dependent := map[string]bool{played.Name: true}
	for grew := true; grew; {
		grew = false
		for _, j := range jobs {
			if !j.current() || dependent[j.Name] {
				continue
			}
			for _, n := range j.Needs {
				if dependent[n.Name] {
					dependent[j.Name] = true
					grew = true
					break
				}
			}
		}
	}
	for _, j := range jobs {
		if j.current() && j.Status == Skipped && (j.StageIdx > played.StageIdx || dependent[j.Name]) {
			out = append(out, Transition{JobID: j.ID, From: Skipped, To: Created})
		}
	}
	return out, nil
}

// CheckNeeds reports, for every current job, each non-optional need that
// names no current job of an earlier or the same stage, with GitLab's
// pipeline-creation error text. Optional needs of absent jobs are
// dropped silently, as GitLab does. Pipeline creation should refuse a
// pipeline for which CheckNeeds fails; [Advance] merely ignores such
// needs.
func CheckNeeds(jobs []Job) error {
	byName := indexByName(jobs)
	var errs []error
	for _, j := range jobs {
		if !j.current() {
			continue
		}
		for _, n := range j.Needs {
			if n.Optional {
				continue
			}
			ok := false
			for _, k := range byName[n.Name] {
				if jobs[k].StageIdx <= j.StageIdx {
					ok = true
				}
			}
			if !ok {
				errs = append(errs, fmt.Errorf("'%s' job needs '%s' job, but '%s' is not in any previous stage", j.Name, n.Name, n.Name))
			}
		}
	}
	return errors.Join(errs...)
}
