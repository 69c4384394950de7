package store

import (
	"context"
	"database/sql"
	"time"
)

// RunnerBrief is the part of a runner row that job JSON shows (GitLab's
// job.runner object). It is read here rather than through the runner
// area's types so that the pipelines API does not depend on them.
type RunnerBrief struct {
	ID          int64
	Description string
	RunnerType  string
	Paused      bool
	ContactedAt *time.Time
}

// RunnerBriefByID loads the runner summary for job JSON.
func (s *Store) RunnerBriefByID(ctx context.Context, id int64) (*RunnerBrief, error) {
	var r RunnerBrief
	var contacted sql.NullInt64
	err := s.queryRow(ctx, `SELECT id, description, runner_type, paused, contacted_at FROM runners WHERE id = ?`, id).
		Scan(&r.ID, &r.Description, &r.RunnerType, &r.Paused, &contacted)
	if err != nil {
		return nil, mapErr(err)
	}
	r.ContactedAt = TimePtr(contacted)
	return &r, nil
}

// TriggerDescriptionByID returns a trigger's description for the
// "triggered by" block of pipeline JSON; ErrNotFound once it was deleted.
func (s *Store) TriggerDescriptionByID(ctx context.Context, id int64) (string, error) {
	var d string
	err := s.queryRow(ctx, `SELECT description FROM triggers WHERE id = ?`, id).Scan(&d)
	return d, mapErr(err)
}

// LatestPipelineForRef returns the newest pipeline of a project for a ref
// at a commit (GitLab's /pipelines/latest).
func (s *Store) LatestPipelineForRef(ctx context.Context, projectID int64, ref, sha string) (*Pipeline, error) {
	return scanPipeline(s.queryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE project_id = ? AND ref = ? AND sha = ? ORDER BY id DESC LIMIT 1`, projectID, ref, sha))
}
