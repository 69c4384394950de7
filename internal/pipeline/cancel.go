package pipeline

import (
	"context"
	"errors"

	"github.com/kilnci/kiln/internal/pipeline/state"
	"github.com/kilnci/kiln/internal/store"
)

// maxCancelDepth bounds how far a cancel follows downstream pipelines
// (child pipelines of child pipelines, multi-project chains), so that a
// cycle or a runaway hierarchy cannot make one transaction unbounded.
const maxCancelDepth = 10

// cancelPipelineTx cancels every unfinished job of a pipeline inside tx,
// then the pipelines its bridges created (child and multi-project), as
// GitLab cascades a cancel to downstream pipelines. Locks are taken parent
// first, then child, the order every other path uses. seen holds the
// pipelines already canceled by this call.
func (e *Engine) cancelPipelineTx(ctx context.Context, tx *store.Tx, pipelineID int64, depth int, seen map[int64]bool) error {
	pl, err := tx.LockPipeline(ctx, pipelineID)
	if err != nil {
		return err
	}
	seen[pipelineID] = true
	rows, err := tx.JobsOfPipeline(ctx, pipelineID)
	if err != nil {
		return err
	}
	if depth > 0 && state.IsComplete(state.Status(pl.Status)) {
		// A finished downstream stays as it ended (and so do its own).
		return nil
	}
	jobs, _ := toStateJobs(rows)
	for _, tr := range state.Cancel(jobs) {
		if err := tx.SetJobStatus(ctx, tr.JobID, store.JobUpdate{Status: string(tr.To)}); err != nil {
			return err
		}
	}
	if err := e.process(ctx, tx, pipelineID); err != nil {
		return err
	}
	return e.cancelDownstream(ctx, tx, rows, depth, seen)
}

// cancelDownstream cancels the pipelines the bridges among rows created.
func (e *Engine) cancelDownstream(ctx context.Context, tx *store.Tx, rows []*store.Job, depth int, seen map[int64]bool) error {
	if depth >= maxCancelDepth {
		return nil
	}
	for _, j := range rows {
		id := j.DownstreamPipelineID
		if j.Kind != "bridge" || id == 0 || seen[id] {
			continue
		}
		err := e.cancelPipelineTx(ctx, tx, id, depth+1, seen)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted downstream
		}
		if err != nil {
			return err
		}
	}
	return nil
}
