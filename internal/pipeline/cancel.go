package pipeline

import (
	"context"
	"errors"

	"github.com/kilnci/kiln/internal/access"
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
func (e *Engine) cancelPipelineTx(ctx context.Context, tx *store.Tx, actor *store.User, pipelineID int64, depth int, seen map[int64]bool) error {
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
	return e.cancelDownstream(ctx, tx, actor, rows, depth, seen)
}

// cancelDownstream cancels the pipelines the bridges among rows created
// that actor may act on; others (another project actor cannot see, a
// protected ref there) keep running, as GitLab cascades only where the
// user has permission.
func (e *Engine) cancelDownstream(ctx context.Context, tx *store.Tx, actor *store.User, rows []*store.Job, depth int, seen map[int64]bool) error {
	if depth >= maxCancelDepth {
		return nil
	}
	for _, j := range rows {
		id := j.DownstreamPipelineID
		if j.Kind != "bridge" || id == 0 || seen[id] {
			continue
		}
		var err error
		if actor != nil { // nil: the engine's own cancel of what a bridge just made
			_, err = e.mayActOn(ctx, actor, id)
		}
		if errors.Is(err, ErrForbidden) {
			continue
		}
		if err == nil {
			err = e.cancelPipelineTx(ctx, tx, actor, id, depth+1, seen)
		}
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted downstream
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MayAct reports (nil) whether actor may retry, cancel or play jobs of pl:
// Developer access to its project, and the right to update its ref when
// that ref is protected, now or when the pipeline was created. Otherwise
// it returns ErrForbidden.
func (e *Engine) MayAct(ctx context.Context, actor *store.User, pl *store.Pipeline) error {
	p, err := e.Store.ProjectByID(ctx, pl.ProjectID)
	if err != nil {
		return err
	}
	level, err := e.policy().Level(ctx, p, actor)
	if err != nil {
		return err
	}
	protected := pl.Protected
	if !protected {
		if protected, err = e.policy().Protected(ctx, p, FullRef(pl)); err != nil {
			return err
		}
	}
	if !access.CanActOnPipeline(level, protected) {
		return ErrForbidden
	}
	return nil
}

func (e *Engine) mayActOn(ctx context.Context, actor *store.User, pipelineID int64) (*store.Pipeline, error) {
	pl, err := e.Store.PipelineByID(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	return pl, e.MayAct(ctx, actor, pl)
}

func (e *Engine) mayActOnJob(ctx context.Context, actor *store.User, jobID int64) error {
	j, err := e.Store.JobByID(ctx, jobID)
	if err != nil {
		return err
	}
	_, err = e.mayActOn(ctx, actor, j.PipelineID)
	return err
}

// FullRef is a pipeline's ref as git names it (refs/heads/x, refs/tags/x),
// which never needs resolving again.
func FullRef(pl *store.Pipeline) string {
	if pl.Tag {
		return "refs/tags/" + pl.Ref
	}
	return "refs/heads/" + pl.Ref
}
