package api

// eraseJobFiles deletes an erased job's log and artifacts archive. The row
// is marked erased first, so readers already see an empty trace and no
// artifacts; a file that cannot be removed is logged, not reported to the
// user, whose job is erased either way.
func (a *API) eraseJobFiles(jobID int64) {
	if t := a.Runners.Traces; t != nil {
		if err := t.Delete(jobID); err != nil {
			a.Log.Warn("deleting an erased job's trace failed", "job", jobID, "err", err)
		}
	}
	if ar := a.Runners.Artifacts; ar != nil {
		if err := ar.Delete(jobID); err != nil {
			a.Log.Warn("deleting an erased job's artifacts failed", "job", jobID, "err", err)
		}
	}
}
