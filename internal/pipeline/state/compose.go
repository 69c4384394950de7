package state

// kind is what a job contributes to a composite status: its own status,
// or one of the two pseudo statuses GitLab derives from allow_failure.
type kind string

const (
	// successWithWarnings is a failed or canceled allow_failure job: it
	// counts as success but leaves a warning.
	successWithWarnings kind = "success_with_warnings"
	// ignored is a non-blocking manual job: nobody has to play it.
	ignored kind = "ignored"
)

// composite mirrors Gitlab::Ci::Status::Composite: the set of kinds
// present among a group of jobs, from which one status is derived.
type composite struct {
	set map[kind]bool
	dag bool
}

func newComposite(dag bool) *composite {
	return &composite{set: map[kind]bool{}, dag: dag}
}

func (c *composite) add(s Status, allowFailure bool) {
	k := kind(s)
	switch {
	case allowFailure && (s == Failed || s == Canceled):
		k = successWithWarnings
	case allowFailure && s == Manual:
		k = ignored
	}
	c.set[k] = true
}

func (c *composite) any(ks ...kind) bool {
	for _, k := range ks {
		if c.set[k] {
			return true
		}
	}
	return false
}

func (c *composite) only(ks ...kind) bool {
	n := 0
	for _, k := range ks {
		if c.set[k] {
			n++
		}
	}
	return n > 0 && n == len(c.set)
}

func (c *composite) warnings() bool { return c.set[successWithWarnings] }

// status derives the composite status. The order of the checks is
// GitLab's and matters: the "only" checks recognise exact outcomes, the
// "any" checks then pick the most significant activity. An empty group
// is success, as in GitLab's StatusCollection, so that a job with no
// prerequisites (first stage, `needs: []`) is ready at once.
func (c *composite) status() Status {
	const (
		success  = kind(Success)
		skipped  = kind(Skipped)
		created  = kind(Created)
		prep     = kind(Preparing)
		canceled = kind(Canceled)
		pending  = kind(Pending)
		sww      = successWithWarnings
	)
	switch {
	case len(c.set) == 0:
		return Success
	case c.dag && c.any(skipped, ignored):
		// A needed job that did not run at all (skipped, or a manual job
		// nobody played) skips the dependent job.
		return Skipped
	case c.only(skipped, ignored):
		return Skipped
	case c.only(success, skipped, sww, ignored):
		return Success
	case c.only(created, sww, ignored):
		return Created
	case c.only(prep, sww, ignored):
		return Preparing
	case c.only(canceled, success, skipped, sww, ignored):
		return Canceled
	case c.only(pending, created, skipped, sww, ignored):
		return Pending
	case c.any(kind(Running), pending):
		return Running
	case c.any(kind(WaitingForResource)):
		return WaitingForResource
	case c.any(kind(Manual)):
		return Manual
	case c.any(kind(Scheduled)):
		return Scheduled
	case c.any(prep):
		return Preparing
	case c.any(created):
		// Some jobs finished, others are yet to start: in progress.
		return Running
	case c.any(kind(Canceling)):
		return Canceling
	}
	return Failed
}

// PipelineStatus composes the status of a pipeline from its current
// (non-retried) jobs the way GitLab's Ci::HasStatus composite does:
// all success/skipped is success, only skipped is skipped, a blocking
// manual job with nothing else active is manual ("blocked"), running
// beats pending, any failure that is not allowed is failed, and so on.
//
// warnings reports whether any current allow_failure job failed or was
// canceled. It is reported whatever the status, as GitLab's
// Composite#warnings? is; "passed with warnings" is status == Success
// && warnings.
//
// A pipeline without current jobs is success, mirroring GitLab's
// StatusCollection; pipeline creation rejects such a pipeline anyway.
func PipelineStatus(jobs []Job) (status Status, warnings bool) {
	c := newComposite(false)
	for _, j := range jobs {
		if j.current() {
			c.add(j.Status, j.AllowFailure)
		}
	}
	return c.status(), c.warnings()
}

// StageStatus composes the status of one stage from its current jobs,
// with the same rules as [PipelineStatus].
func StageStatus(jobs []Job, stageIdx int) (status Status, warnings bool) {
	c := newComposite(false)
	for _, j := range jobs {
		if j.current() && j.StageIdx == stageIdx {
			c.add(j.Status, j.AllowFailure)
		}
	}
	return c.status(), c.warnings()
}
