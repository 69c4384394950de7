package pipeline

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/kilnci/kiln/internal/pipeline/state"
	"github.com/kilnci/kiln/internal/store"
)

// ErrNotRunning is returned when a runner reports on a job that is no longer
// its to report on (finished, canceled, or retried).
var ErrNotRunning = errors.New("job is not running")

// ErrNotRetryable, ErrNotPlayable and ErrNotCancelable refuse user actions.
var (
	ErrNotRetryable  = errors.New("job is not retryable")
	ErrNotPlayable   = errors.New("job is not playable")
	ErrNotCancelable = errors.New("job is not cancelable")
	// ErrForbidden: the actor may not act on the pipeline (its project
	// access, or the protection of its ref, does not allow it).
	ErrForbidden = errors.New("insufficient permissions for this pipeline")
)

func toStateJobs(rows []*store.Job) ([]state.Job, map[int64]*store.Job) {
	byID := make(map[int64]*store.Job, len(rows))
	out := make([]state.Job, 0, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
		sp, _ := ParseSpec(r.Spec)
		if sp == nil {
			sp = &JobSpec{}
		}
		sj := state.Job{ID: r.ID, Name: r.Name, StageIdx: r.StageIdx, Status: state.Status(r.Status), When: r.When,
			AllowFailure: r.AllowFailure, NeedsSet: sp.NeedsSet, Retried: r.Retried}
		for _, n := range sp.Needs {
			sj.Needs = append(sj.Needs, state.Need{Name: n.Job, Optional: n.Optional})
		}
		if r.ScheduledAt != nil {
			sj.ScheduledAt = *r.ScheduledAt
		}
		if sp.StartIn != "" {
			sj.StartIn = parseStartIn(sp.StartIn)
		}
		out = append(out, sj)
	}
	return out, byID
}

// process advances a pipeline inside tx: jobs whose prerequisites are done
// move on, and the pipeline's status follows.
func (e *Engine) process(ctx context.Context, tx *store.Tx, pipelineID int64) error {
	pl, err := tx.LockPipeline(ctx, pipelineID)
	if err != nil {
		return err
	}
	rows, err := tx.JobsOfPipeline(ctx, pipelineID)
	if err != nil {
		return err
	}
	jobs, byID := toStateJobs(rows)
	now := e.now()
	pending, bridges := false, []int64{}
	for _, tr := range state.Advance(jobs, now) {
		u := store.JobUpdate{Status: string(tr.To)}
		if tr.To == state.Scheduled {
			at := tr.ScheduledAt
			u.ScheduledAt = &at
		}
		if err := tx.SetJobStatus(ctx, tr.JobID, u); err != nil {
			return err
		}
		if tr.To == state.Pending {
			if byID[tr.JobID].Kind == "bridge" {
				bridges = append(bridges, tr.JobID)
			} else {
				pending = true
			}
		}
		for i := range jobs {
			if jobs[i].ID == tr.JobID {
				jobs[i].Status = tr.To
				if tr.To == state.Scheduled {
					jobs[i].ScheduledAt = tr.ScheduledAt
				}
			}
		}
	}
	if pending && e.JobsPending != nil {
		tx.AfterCommit(e.JobsPending)
	}
	for _, id := range bridges {
		if e.BridgePending != nil {
			tx.AfterCommit(func() { e.BridgePending(context.WithoutCancel(ctx), id) })
		}
	}
	if at, ok := state.NextWakeup(jobs); ok {
		tx.AfterCommit(func() { e.wakeAt(pipelineID, at) })
	}
	if pl.Status == "failed" && pl.YAMLErrors != "" {
		return nil
	}
	status, warnings := state.PipelineStatus(jobs)
	if len(jobs) == 0 {
		status = state.Status(pl.Status)
	}
	was := pl.Status
	pl.Status, pl.Warnings = string(status), warnings
	switch status {
	case state.Running, state.Success, state.Failed, state.Canceled:
		if pl.StartedAt == nil && status == state.Running {
			t := now.UTC()
			pl.StartedAt = &t
		}
	}
	complete := state.IsComplete(status)
	if complete && pl.FinishedAt == nil {
		t := now.UTC()
		pl.FinishedAt = &t
		if pl.StartedAt == nil {
			pl.StartedAt = &t
		}
		d := int64(pl.FinishedAt.Sub(*pl.StartedAt).Seconds())
		pl.Duration = &d
		q := int64(pl.StartedAt.Sub(pl.CreatedAt).Seconds())
		pl.QueuedDuration = &q
	} else if !complete {
		pl.FinishedAt, pl.Duration = nil, nil
	}
	if was == pl.Status && !complete && pl.StartedAt != nil {
		// Nothing the pipeline row shows has changed.
		return tx.UpdatePipelineState(ctx, pl)
	}
	if err := tx.UpdatePipelineState(ctx, pl); err != nil {
		return err
	}
	if complete && was != pl.Status {
		e.observePipelineFinished(tx, pl.Status)
	}
	if complete && was != pl.Status && e.PipelineFinished != nil {
		tx.AfterCommit(func() { e.PipelineFinished(context.WithoutCancel(ctx), pipelineID) })
	}
	return nil
}

// wakeAt re-processes a pipeline when a delayed job is due.
func (e *Engine) wakeAt(pipelineID int64, at time.Time) {
	e.timerMu.Lock()
	defer e.timerMu.Unlock()
	if e.timers == nil {
		e.timers = map[int64]*time.Timer{}
	}
	if t, ok := e.timers[pipelineID]; ok {
		t.Stop()
	}
	e.timers[pipelineID] = time.AfterFunc(time.Until(at)+10*time.Millisecond, func() {
		e.timerMu.Lock()
		delete(e.timers, pipelineID)
		e.timerMu.Unlock()
		e.Process(context.Background(), pipelineID)
	})
}

// Process advances a pipeline in its own transaction.
func (e *Engine) Process(ctx context.Context, pipelineID int64) error {
	return e.Store.Write(ctx, func(tx *store.Tx) error { return e.process(ctx, tx, pipelineID) })
}

// ProcessDue advances every pipeline with a delayed job whose time has come
// (run at start, so that timers lost in a restart fire).
func (e *Engine) ProcessDue(ctx context.Context) error {
	jobs, err := e.Store.DueScheduledJobs(ctx, e.now().Add(24*365*time.Hour))
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	for _, j := range jobs {
		if !seen[j.PipelineID] {
			seen[j.PipelineID] = true
			if j.ScheduledAt != nil && j.ScheduledAt.After(e.now()) {
				e.wakeAt(j.PipelineID, *j.ScheduledAt)
			} else if err := e.Process(ctx, j.PipelineID); err != nil {
				return err
			}
		}
	}
	return nil
}

// retryReason maps a failure reason to the names retry:when uses.
func retryReason(reason string) string {
	switch reason {
	case "job_execution_timeout":
		return "stuck_or_timeout_failure"
	case "":
		return "unknown_failure"
	}
	return reason
}

func shouldRetry(sp *JobSpec, j *store.Job, reason string) bool {
	if j.RetryCount >= sp.RetryMax {
		return false
	}
	if len(sp.RetryWhen) == 0 {
		return true
	}
	r := retryReason(reason)
	return slices.Contains(sp.RetryWhen, "always") || slices.Contains(sp.RetryWhen, r)
}

// lockJob locks a job's pipeline row and then the job row, always in that
// order, so that job-level changes and pipeline-level ones (cancel, retry)
// cannot deadlock on PostgreSQL.
func lockJob(ctx context.Context, tx *store.Tx, jobID int64) (*store.Job, error) {
	j, err := tx.JobByID(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.LockPipeline(ctx, j.PipelineID); err != nil {
		return nil, err
	}
	return tx.LockJob(ctx, jobID)
}

// FinishResult tells the runner API what happened to a reported result.
type FinishResult struct {
	Job    *store.Job
	Status string
}

// FinishJob records a runner's final report (success or failed) and moves
// the pipeline on; a job in canceling ends canceled whatever it reports.
func (e *Engine) FinishJob(ctx context.Context, jobID int64, result, failureReason string, exitCode *int) (string, error) {
	var final string
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		to, ok := state.Finish(state.Status(j.Status), state.Status(result))
		if !ok {
			return ErrNotRunning
		}
		final = string(to)
		u := store.JobUpdate{Status: final, ExitCode: exitCode}
		sp, _ := ParseSpec(j.Spec)
		if sp == nil {
			sp = &JobSpec{}
		}
		if to == state.Failed {
			if failureReason == "" {
				failureReason = "script_failure"
			}
			u.FailureReason = &failureReason
			if exitCode != nil && slices.Contains(sp.AllowFailureExitCodes, *exitCode) {
				t := true
				u.AllowFailure = &t
			}
		}
		if to == state.Canceled {
			r := ""
			u.FailureReason = &r
		}
		if err := tx.SetJobStatus(ctx, jobID, u); err != nil {
			return err
		}
		e.observeJobFinished(tx, j, final)
		if to == state.Failed && shouldRetry(sp, j, failureReason) {
			if err := e.cloneJob(ctx, tx, j, j.UserID); err != nil {
				return err
			}
		}
		return e.process(ctx, tx, j.PipelineID)
	})
	return final, err
}

// cloneJob supersedes j with a fresh created copy (a retry).
// The copy runs as userID, who retried it (GitLab's job user).
func (e *Engine) cloneJob(ctx context.Context, tx *store.Tx, j *store.Job, userID int64) error {
	if err := tx.MarkJobRetried(ctx, j.ID); err != nil {
		return err
	}
	c := &store.Job{PipelineID: j.PipelineID, ProjectID: j.ProjectID, Name: j.Name, Stage: j.Stage, StageIdx: j.StageIdx,
		Status: "created", When: j.When, AllowFailure: j.AllowFailure, Kind: j.Kind, Spec: j.Spec, Tags: j.Tags,
		UserID: userID, RetryCount: j.RetryCount + 1}
	if sp, _ := ParseSpec(j.Spec); sp != nil && sp.AllowFailureExitCodes != nil {
		// allow_failure may have been set by an exit code; the copy starts over.
		c.AllowFailure = false
	}
	return tx.InsertJob(ctx, c)
}

// CancelPipeline cancels every unfinished job; running jobs go to canceling
// and their runners are told to stop. Unfinished downstream pipelines
// created by its bridges are canceled too (cancel.go).
// actor must be allowed to act on the pipeline (Engine.MayAct); the cancel
// cascades only into downstream pipelines actor may act on as well.
func (e *Engine) CancelPipeline(ctx context.Context, actor *store.User, pipelineID int64) error {
	if _, err := e.mayActOn(ctx, actor, pipelineID); err != nil {
		return err
	}
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		return e.cancelPipelineTx(ctx, tx, actor, pipelineID, 0, map[int64]bool{})
	})
}

// RetryPipeline retries failed and canceled jobs and re-runs skipped ones.
// The retried jobs run as actor, who must be allowed to act on it.
func (e *Engine) RetryPipeline(ctx context.Context, actor *store.User, pipelineID int64) error {
	if _, err := e.mayActOn(ctx, actor, pipelineID); err != nil {
		return err
	}
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		pl, err := tx.LockPipeline(ctx, pipelineID)
		if err != nil {
			return err
		}
		rows, err := tx.JobsOfPipeline(ctx, pipelineID)
		if err != nil {
			return err
		}
		jobs, byID := toStateJobs(rows)
		clone, reset := state.RetryPlan(jobs)
		if len(clone) == 0 && len(reset) == 0 {
			return ErrNotRetryable
		}
		for _, id := range clone {
			if err := e.cloneJob(ctx, tx, byID[id], actor.ID); err != nil {
				return err
			}
		}
		for _, id := range reset {
			if err := tx.SetJobStatus(ctx, id, store.JobUpdate{Status: "created"}); err != nil {
				return err
			}
			// Skipped jobs run again as the actor too (GitLab sets the user
			// of every job it moves back to created), not as whoever
			// created the pipeline: a developer retrying a maintainer's
			// pipeline must not get jobs, and job tokens, of the maintainer.
			if err := tx.SetJobUser(ctx, id, actor.ID); err != nil {
				return err
			}
		}
		pl.FinishedAt, pl.Duration = nil, nil
		pl.Status = "created"
		if err := tx.UpdatePipelineState(ctx, pl); err != nil {
			return err
		}
		return e.process(ctx, tx, pipelineID)
	})
}

// RetryJob clones one finished job and runs it again; it returns the new job.
// The copy runs as actor, who must be allowed to act on its pipeline.
func (e *Engine) RetryJob(ctx context.Context, actor *store.User, jobID int64) (*store.Job, error) {
	if err := e.mayActOnJob(ctx, actor, jobID); err != nil {
		return nil, err
	}
	var newID int64
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if j.Retried || !slices.Contains([]string{"success", "failed", "canceled"}, j.Status) {
			return ErrNotRetryable
		}
		if _, err := tx.LockPipeline(ctx, j.PipelineID); err != nil {
			return err
		}
		if err := e.cloneJob(ctx, tx, j, actor.ID); err != nil {
			return err
		}
		rows, err := tx.JobsOfPipeline(ctx, j.PipelineID)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Name == j.Name && !r.Retried {
				newID = r.ID
			}
		}
		if pl, err := tx.LockPipeline(ctx, j.PipelineID); err == nil && pl.FinishedAt != nil {
			pl.FinishedAt, pl.Duration = nil, nil
			pl.Status = "running"
			tx.UpdatePipelineState(ctx, pl)
		}
		return e.process(ctx, tx, j.PipelineID)
	})
	if err != nil {
		return nil, err
	}
	return e.Store.JobByID(ctx, newID)
}

// CancelJob cancels one job, for an actor allowed to act on its pipeline.
func (e *Engine) CancelJob(ctx context.Context, actor *store.User, jobID int64) error {
	if err := e.mayActOnJob(ctx, actor, jobID); err != nil {
		return err
	}
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		var to string
		switch j.Status {
		case "created", "pending", "scheduled", "manual", "waiting_for_resource", "preparing":
			to = "canceled"
		case "running":
			to = "canceling"
		default:
			return ErrNotCancelable
		}
		if err := tx.SetJobStatus(ctx, jobID, store.JobUpdate{Status: to}); err != nil {
			return err
		}
		return e.process(ctx, tx, j.PipelineID)
	})
}

// PlayJob starts a manual (or scheduled) job, with optional variables. The
// job then runs as actor, who must be allowed to act on its pipeline.
func (e *Engine) PlayJob(ctx context.Context, actor *store.User, jobID int64, vars []Var) error {
	if err := e.mayActOnJob(ctx, actor, jobID); err != nil {
		return err
	}
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if _, err := tx.LockPipeline(ctx, j.PipelineID); err != nil {
			return err
		}
		if j.Status == "scheduled" {
			if err := tx.SetJobStatus(ctx, jobID, store.JobUpdate{Status: "pending"}); err != nil {
				return err
			}
			if e.JobsPending != nil {
				tx.AfterCommit(e.JobsPending)
			}
			return e.process(ctx, tx, j.PipelineID)
		}
		rows, err := tx.JobsOfPipeline(ctx, j.PipelineID)
		if err != nil {
			return err
		}
		jobs, byID := toStateJobs(rows)
		trs, err := state.Play(jobs, jobID)
		if err != nil {
			return ErrNotPlayable
		}
		spec := ""
		if len(vars) > 0 {
			if sp, _ := ParseSpec(j.Spec); sp != nil {
				sp.PlayVariables = vars
				spec = sp.encode()
			}
		}
		if err := tx.SetJobPlay(ctx, jobID, actor.ID, spec); err != nil {
			return err
		}
		for _, tr := range trs {
			if err := tx.SetJobStatus(ctx, tr.JobID, store.JobUpdate{Status: string(tr.To)}); err != nil {
				return err
			}
			// Jobs the play revives (skipped ones that depend on it) run as
			// the player, like the played job.
			if tr.JobID != jobID {
				if err := tx.SetJobUser(ctx, tr.JobID, actor.ID); err != nil {
					return err
				}
			}
			switch {
			case tr.To != state.Pending:
			case byID[tr.JobID] != nil && byID[tr.JobID].Kind == "bridge":
				// A played bridge creates its downstream now, as one that
				// became pending by itself does (process).
				if e.BridgePending != nil {
					id := tr.JobID
					tx.AfterCommit(func() { e.BridgePending(context.WithoutCancel(ctx), id) })
				}
			case e.JobsPending != nil:
				tx.AfterCommit(e.JobsPending)
			}
		}
		return e.process(ctx, tx, j.PipelineID)
	})
}

// parseStartIn reads GitLab's start_in ("30 minutes", "1 day", "10 seconds", "1 hour 30 min").
func parseStartIn(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return ParseHumanDuration(s)
}

// BridgeRecoveryGrace is how long a bridge must have been pending before
// Recover takes it for one whose BridgePending follow-up was lost: younger
// ones may still be in the hands of the hook that is creating their
// downstream pipeline (on this server or another).
const BridgeRecoveryGrace = time.Minute

// Recover redoes follow-ups that run after a commit and would be lost if the
// server died right then: delayed jobs whose time has come, bridges still
// waiting for their downstream pipeline, and depend bridges whose
// downstream already finished. It is safe to run at any time, on any
// replica; the server runs it at start and then every minute (the
// "recovery" loop of internal/server, one replica at a time).
func (e *Engine) Recover(ctx context.Context) error {
	if err := e.ProcessDue(ctx); err != nil {
		return err
	}
	bridges, err := e.Store.BridgesToRecover(ctx, e.now().Add(-BridgeRecoveryGrace), 500)
	if err != nil {
		return err
	}
	for _, j := range bridges {
		switch {
		case j.Status == "pending" && e.BridgePending != nil:
			e.BridgePending(ctx, j.ID)
		case j.Status == "running" && e.PipelineFinished != nil:
			e.PipelineFinished(ctx, j.DownstreamPipelineID)
		}
	}
	return nil
}

// RequeueUnacknowledged puts a job that was handed to a runner which never
// acknowledged it back to pending (see store.Tx.RequeueUnacknowledgedJob),
// and wakes runners. It reports false when the job has moved on.
func (e *Engine) RequeueUnacknowledged(ctx context.Context, jobID int64) (bool, error) {
	var ok bool
	err := e.Store.Write(ctx, func(tx *store.Tx) error {
		ok = false
		j, err := lockJob(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if ok, err = tx.RequeueUnacknowledgedJob(ctx, jobID); err != nil || !ok {
			return err
		}
		if e.JobsPending != nil {
			tx.AfterCommit(e.JobsPending)
		}
		return e.process(ctx, tx, j.PipelineID)
	})
	return ok, err
}
