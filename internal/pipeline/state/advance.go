package state

import (
	"slices"
	"time"
)

// Advance returns the transitions to make now, in the order they must be
// applied. It mirrors one run of GitLab's AtomicProcessingService:
//
//   - scheduled jobs whose ScheduledAt is not after now become pending;
//   - stages are visited in order and, within a stage, created jobs in
//     needs order; a job is considered once its prerequisites are
//     complete: every job of earlier stages for a stage-scheduled job,
//     every needed job for a job with needs (none for `needs: []`);
//   - the prerequisites' composite status then decides, by `when`,
//     whether the job is skipped or enqueued: pending for on_success,
//     on_failure and always, manual for when: manual, scheduled (at
//     now+StartIn) for when: delayed.
//
// Each decision is visible to the jobs processed after it in the same
// call, so one call settles a whole chain of skips, and a stage whose
// jobs all got skipped lets the next stage proceed. Jobs that are not
// created are never touched. A job that cannot be decided yet (its
// prerequisites are running, manual-blocking or scheduled) stays
// created.
//
// Needs naming a job absent from the pipeline are ignored, as GitLab's
// status collection does; [CheckNeeds] is the creation-time check that
// rejects non-optional ones.
func Advance(jobs []Job, now time.Time) []Transition {
	status := make([]Status, len(jobs))
	for i, j := range jobs {
		status[i] = j.Status
	}
	byName := indexByName(jobs)
	var out []Transition

	// Due scheduled jobs first: the timer that fired is the reason for
	// this call, and pending does not complete anything downstream, so
	// the order relative to the stage pass is immaterial for decisions.
	for i, j := range jobs {
		if j.current() && j.Status == Scheduled && !j.ScheduledAt.After(now) {
			out = append(out, Transition{JobID: j.ID, From: Scheduled, To: Pending})
			status[i] = Pending
		}
	}

	for _, stage := range stageOrder(jobs) {
		prior := newComposite(false)
		for i, j := range jobs {
			if j.current() && j.StageIdx < stage {
				prior.add(status[i], j.AllowFailure)
			}
		}
		priorStatus := prior.status()

		for _, i := range createdInStage(jobs, status, byName, stage) {
			j := jobs[i]
			prev := priorStatus
			if j.NeedsSet {
				needed := newComposite(true)
				for _, n := range j.Needs {
					for _, k := range byName[n.Name] {
						needed.add(status[k], jobs[k].AllowFailure)
					}
				}
				prev = needed.status()
			}
			if !IsComplete(prev) {
				continue
			}
			t := decide(j, prev, now)
			out = append(out, t)
			status[i] = t.To
		}
	}
	return out
}

// decide is GitLab's ProcessBuildService for a job whose prerequisites
// completed with composite status prev.
func decide(j Job, prev Status, now time.Time) Transition {
	t := Transition{JobID: j.ID, From: j.Status, To: Skipped}
	if !slices.Contains(runsAfter(j.When, j.NeedsSet), prev) {
		return t
	}
	switch j.When {
	case WhenDelayed:
		t.To = Scheduled
		t.ScheduledAt = now.Add(j.StartIn)
	case WhenManual:
		t.To = Manual
	default:
		t.To = Pending
	}
	return t
}

// runsAfter lists the prerequisite outcomes on which a job with the given
// `when` is enqueued rather than skipped. A stage-scheduled on_success job
// also runs after earlier stages that were entirely skipped, but a job
// with needs requires its needs to have actually succeeded. Unknown
// values run never, as in GitLab.
func runsAfter(when string, dag bool) []Status {
	switch when {
	case "", WhenOnSuccess, WhenManual, WhenDelayed:
		if dag {
			return []Status{Success}
		}
		return []Status{Success, Skipped}
	case WhenOnFailure:
		return []Status{Failed}
	case WhenAlways:
		return []Status{Success, Failed, Skipped}
	}
	return nil
}

// indexByName maps job names to the indexes of the current jobs bearing
// them. Several current jobs may share a name only through a caller bug;
// counting all of them is the conservative choice.
func indexByName(jobs []Job) map[string][]int {
	m := make(map[string][]int, len(jobs))
	for i, j := range jobs {
		if j.current() {
			m[j.Name] = append(m[j.Name], i)
		}
	}
	return m
}

// stageOrder returns the distinct stage indexes of current jobs, ascending.
func stageOrder(jobs []Job) []int {
	var stages []int
	for _, j := range jobs {
		if j.current() && !slices.Contains(stages, j.StageIdx) {
			stages = append(stages, j.StageIdx)
		}
	}
	slices.Sort(stages)
	return stages
}

// createdInStage returns the indexes of the created current jobs of a
// stage, ordered so that a job comes after the same-stage jobs it needs
// (Kahn's algorithm, ties in input order). Members of a needs cycle,
// which configuration validation rejects, are appended in input order.
func createdInStage(jobs []Job, status []Status, byName map[string][]int, stage int) []int {
	var set []int
	for i, j := range jobs {
		if j.current() && j.StageIdx == stage && status[i] == Created {
			set = append(set, i)
		}
	}
	inSet := make(map[int]bool, len(set))
	for _, i := range set {
		inSet[i] = true
	}
	waits := make(map[int]int, len(set)) // unmet in-set needs per job
	unblocks := make(map[int][]int)      // needed job -> dependents
	for _, i := range set {
		for _, n := range jobs[i].Needs {
			for _, k := range byName[n.Name] {
				if inSet[k] && k != i {
					waits[i]++
					unblocks[k] = append(unblocks[k], i)
				}
			}
		}
	}
	order := make([]int, 0, len(set))
	placed := make(map[int]bool, len(set))
	for progress := true; progress; {
		progress = false
		for _, i := range set {
			if placed[i] || waits[i] > 0 {
				continue
			}
			placed[i] = true
			order = append(order, i)
			for _, d := range unblocks[i] {
				waits[d]--
			}
			progress = true
		}
	}
	for _, i := range set {
		if !placed[i] {
			order = append(order, i)
		}
	}
	return order
}

// NextWakeup returns the earliest ScheduledAt among current scheduled
// jobs: the store should call [Advance] again at that time. ok is false
// when no job is scheduled.
func NextWakeup(jobs []Job) (at time.Time, ok bool) {
	for _, j := range jobs {
		if j.current() && j.Status == Scheduled && (!ok || j.ScheduledAt.Before(at)) {
			at, ok = j.ScheduledAt, true
		}
	}
	return at, ok
}
