package pipeline

import (
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// Observer receives engine events, for metrics. Every field may be nil.
// Callbacks run after the change committed, on the committing goroutine
// (the store's writer on SQLite): keep them short and never write.
type Observer struct {
	// PipelineCreated is called for each pipeline Create inserts.
	PipelineCreated func(source string)
	// PipelineFinished is called when a pipeline reaches a completed status.
	PipelineFinished func(status string)
	// JobFinished is called when a runner's job ends (reported, canceled
	// while running, or failed as stale), with its wait for a runner
	// (pending→running) and its run time; negative when unknown.
	JobFinished func(status string, queued, ran time.Duration)
}

func (e *Engine) observeCreated(pl *store.Pipeline) {
	if f := e.Observer.PipelineCreated; f != nil {
		f(pl.Source)
	}
}

func (e *Engine) observePipelineFinished(tx *store.Tx, status string) {
	if f := e.Observer.PipelineFinished; f != nil {
		tx.AfterCommit(func() { f(status) })
	}
}

func (e *Engine) observeJobFinished(tx *store.Tx, j *store.Job, status string) {
	f := e.Observer.JobFinished
	if f == nil {
		return
	}
	end := e.now()
	queued, ran := time.Duration(-1), time.Duration(-1)
	if j.StartedAt != nil {
		ran = max(end.Sub(*j.StartedAt), 0)
		if j.QueuedAt != nil {
			queued = max(j.StartedAt.Sub(*j.QueuedAt), 0)
		}
	}
	tx.AfterCommit(func() { f(status, queued, ran) })
}
