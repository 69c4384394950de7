package web

import (
	"time"

	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/stuck"
)

// stuckInfo explains why a pending job has not started, as GitLab's job
// page does, but naming the runners and tags involved (package stuck, which
// the pipeline event stream and `kiln trigger --wait` share).
type stuckInfo = stuck.Explanation

// explainPending is stuck.Explain for the job page's project.
func (w *Web) explainPending(q *req, j *store.Job) (*stuckInfo, error) {
	return stuck.Explain(q.ctx, w.Store, q.project, j, time.Now())
}
