package pipeline

import (
	"context"
	"errors"

	"github.com/kilnci/kiln/internal/pipeline/state"
	"github.com/kilnci/kiln/internal/store"
)

// ErrNotBridge refuses bridge operations on build jobs.
var ErrNotBridge = errors.New("job is not a bridge")

// BridgeCreated links a bridge job to the downstream pipeline it created and
// moves it on: to running when it waits for the downstream (strategy:
// depend), to success otherwise. A bridge that already left pending (the
// downstream finished first and FinishBridge ran, or the upstream was
// canceled) keeps its status; only the link is recorded.
func (e *Engine) BridgeCreated(ctx context.Context, jobID, downstreamID int64, depend bool) error {
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := tx.JobByID(ctx, jobID)
		if err != nil {
			return err
		}
		if j.Kind != "bridge" {
			return ErrNotBridge
		}
		if _, err := tx.LockPipeline(ctx, j.PipelineID); err != nil {
			return err
		}
		if err := tx.SetJobDownstream(ctx, jobID, downstreamID); err != nil {
			return err
		}
		if j.Status == string(state.Canceled) || j.Status == string(state.Canceling) {
			// The upstream was canceled while the downstream was being
			// created: it goes the way of its bridge.
			if err := e.cancelPipelineTx(ctx, tx, nil, downstreamID, 1, map[int64]bool{j.PipelineID: true}); err != nil {
				return err
			}
		}
		to := state.Running
		if !depend {
			to = state.Success
		}
		if state.Valid(state.Status(j.Status), to) {
			if err := tx.SetJobStatus(ctx, jobID, store.JobUpdate{Status: string(to)}); err != nil {
				return err
			}
		}
		return e.process(ctx, tx, j.PipelineID)
	})
}

// FinishBridge ends a bridge job with status (success, failed, canceled or
// skipped) and a failure reason, and moves its pipeline on. It is a no-op
// for a bridge that is already complete: completed jobs never change, a
// retry makes a new job instead.
func (e *Engine) FinishBridge(ctx context.Context, jobID int64, status, reason string) error {
	return e.Store.Write(ctx, func(tx *store.Tx) error {
		j, err := tx.JobByID(ctx, jobID)
		if err != nil {
			return err
		}
		if j.Kind != "bridge" {
			return ErrNotBridge
		}
		if _, err := tx.LockPipeline(ctx, j.PipelineID); err != nil {
			return err
		}
		from, to := state.Status(j.Status), state.Status(status)
		if from == state.Canceling {
			to = state.Canceled
		}
		if state.IsComplete(from) || !state.Valid(from, to) {
			return nil
		}
		u := store.JobUpdate{Status: string(to)}
		if to == state.Failed {
			if reason == "" {
				reason = "unknown_failure"
			}
			u.FailureReason = &reason
		}
		if err := tx.SetJobStatus(ctx, jobID, u); err != nil {
			return err
		}
		return e.process(ctx, tx, j.PipelineID)
	})
}
