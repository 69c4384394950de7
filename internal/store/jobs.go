package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Job is one job (kind "build") or bridge (kind "bridge") of a pipeline. Its
// Spec is the JSON the pipeline engine writes; the store does not read it.
type Job struct {
	ID                   int64
	PipelineID           int64
	ProjectID            int64
	Name                 string
	Stage                string
	StageIdx             int
	Status               string
	When                 string
	AllowFailure         bool
	Kind                 string
	Spec                 string
	Tags                 []string
	UserID               int64
	RunnerID             int64
	FailureReason        string
	ExitCode             *int
	Retried              bool
	RetryCount           int
	Coverage             string
	TraceSize            int64
	ArtifactsFile        string
	ArtifactsSize        int64
	ArtifactsExpireAt    *time.Time
	CreatedAt            time.Time
	QueuedAt             *time.Time
	StartedAt            *time.Time
	FinishedAt           *time.Time
	ScheduledAt          *time.Time
	LastSeenAt           *time.Time
	ErasedAt             *time.Time
	DownstreamPipelineID int64
}

const jobCols = `id, pipeline_id, project_id, name, stage, stage_idx, status, when_, allow_failure, kind, spec, tags, COALESCE(user_id, 0), COALESCE(runner_id, 0),
	failure_reason, exit_code, retried, retry_count, coverage, trace_size, artifacts_file, artifacts_size, artifacts_expire_at,
	created_at, queued_at, started_at, finished_at, scheduled_at, last_seen_at, erased_at, COALESCE(downstream_pipeline_id, 0)`

func scanJob(row interface{ Scan(...any) error }) (*Job, error) {
	var j Job
	var tags string
	var exit sql.NullInt64
	var created int64
	var artExp, queued, started, finished, scheduled, seen, erased sql.NullInt64
	if err := row.Scan(&j.ID, &j.PipelineID, &j.ProjectID, &j.Name, &j.Stage, &j.StageIdx, &j.Status, &j.When, &j.AllowFailure, &j.Kind, &j.Spec, &tags, &j.UserID, &j.RunnerID,
		&j.FailureReason, &exit, &j.Retried, &j.RetryCount, &j.Coverage, &j.TraceSize, &j.ArtifactsFile, &j.ArtifactsSize, &artExp,
		&created, &queued, &started, &finished, &scheduled, &seen, &erased, &j.DownstreamPipelineID); err != nil {
		return nil, mapErr(err)
	}
	if tags != "" {
		j.Tags = strings.Split(tags, ",")
	}
	if exit.Valid {
		e := int(exit.Int64)
		j.ExitCode = &e
	}
	j.CreatedAt = Time(created)
	j.ArtifactsExpireAt, j.QueuedAt, j.StartedAt, j.FinishedAt = TimePtr(artExp), TimePtr(queued), TimePtr(started), TimePtr(finished)
	j.ScheduledAt, j.LastSeenAt, j.ErasedAt = TimePtr(scheduled), TimePtr(seen), TimePtr(erased)
	return &j, nil
}

// InsertJob inserts a job row.
func (t *Tx) InsertJob(ctx context.Context, j *Job) error {
	now := Now()
	if j.Kind == "" {
		j.Kind = "build"
	}
	id, err := t.InsertID(ctx, `INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, status, when_, allow_failure, kind, spec, tags, user_id, retry_count, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.PipelineID, j.ProjectID, j.Name, j.Stage, j.StageIdx, j.Status, j.When, j.AllowFailure, j.Kind, j.Spec, strings.Join(j.Tags, ","), nullID(j.UserID), j.RetryCount, now)
	if err != nil {
		return err
	}
	j.ID, j.CreatedAt = id, Time(now)
	return nil
}

// JobsOfPipeline lists a pipeline's jobs (including retried ones) by id.
func (s *Store) JobsOfPipeline(ctx context.Context, pipelineID int64) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE pipeline_id = ? ORDER BY stage_idx, id`, pipelineID)
}

// JobsOfPipeline lists a pipeline's jobs inside the transaction.
func (t *Tx) JobsOfPipeline(ctx context.Context, pipelineID int64) ([]*Job, error) {
	return t.s.jobs(ctx, t.tx, t.s.rebind(`SELECT `+jobCols+` FROM jobs WHERE pipeline_id = ? ORDER BY stage_idx, id`), pipelineID)
}

func (s *Store) jobs(ctx context.Context, q Querier, query string, args ...any) ([]*Job, error) {
	rows, err := q.QueryContext(ctx, s.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// JobByID loads a job.
func (s *Store) JobByID(ctx context.Context, id int64) (*Job, error) {
	return scanJob(s.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
}

// JobByID loads a job inside the transaction.
func (t *Tx) JobByID(ctx context.Context, id int64) (*Job, error) {
	return scanJob(t.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
}

// LockJob loads a job for update: concurrent reports on one job (a runner's
// final PUT racing the stale-job reaper) serialise on the row on PostgreSQL;
// SQLite has a single writer.
func (t *Tx) LockJob(ctx context.Context, id int64) (*Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE id = ?`
	if t.s.Dialect == Postgres {
		q += ` FOR UPDATE`
	}
	return scanJob(t.QueryRow(ctx, q, id))
}

// JobByTokenHash finds the job holding a job token.
func (s *Store) JobByTokenHash(ctx context.Context, hash string) (*Job, error) {
	return scanJob(s.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE token_hash = ?`, hash))
}

// JobFilter selects jobs for ListJobs.
type JobFilter struct {
	ProjectID  int64
	PipelineID int64
	Status     []string
	// IncludeRetried lists superseded jobs too.
	IncludeRetried bool
	Kind           string
	// BeforeID lists only jobs with smaller ids (keyset pagination; the
	// result is newest first and the total is not counted).
	BeforeID int64
	Keyset   bool
}

// ListJobs lists jobs newest first (a pipeline's jobs by stage). The
// total is exact up to TotalCap, a lower bound beyond it.
func (s *Store) ListJobs(ctx context.Context, f JobFilter, page Page) ([]*Job, int, error) {
	var conds []string
	var args []any
	if f.ProjectID != 0 && f.PipelineID != 0 {
		// The unary plus keeps SQLite's planner (which has no statistics)
		// off the project indexes: a pipeline's few jobs are found through
		// jobs_pipeline, not by walking all of a big project's jobs.
		conds, args = append(conds, "+project_id = ?"), append(args, f.ProjectID)
	} else if f.ProjectID != 0 {
		conds, args = append(conds, "project_id = ?"), append(args, f.ProjectID)
	}
	if f.PipelineID != 0 {
		conds, args = append(conds, "pipeline_id = ?"), append(args, f.PipelineID)
	}
	if len(f.Status) > 0 {
		conds = append(conds, "status IN ("+placeholders(len(f.Status))+")")
		for _, st := range f.Status {
			args = append(args, st)
		}
	}
	if !f.IncludeRetried {
		conds = append(conds, "retried = FALSE")
	}
	if f.Kind != "" {
		conds, args = append(conds, "kind = ?"), append(args, f.Kind)
	}
	if f.BeforeID > 0 {
		conds, args = append(conds, "id < ?"), append(args, f.BeforeID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	if f.Keyset {
		// Seek by id instead of OFFSET: every page costs the same however
		// deep it is, and nothing is counted.
		out, err := s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs`+where+` ORDER BY id DESC LIMIT ?`, append(args, page.Limit()+1)...)
		return out, -1, err
	}
	count, err := s.countCapped(ctx, "jobs", where, args)
	if err != nil {
		return nil, 0, err
	}
	order := "id DESC"
	if f.PipelineID != 0 {
		order = "stage_idx, id"
	}
	// One row beyond the page: see ListPipelines.
	out, err := s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs`+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`, append(args, page.Limit()+1, page.Offset())...)
	more := len(out) > page.Limit()
	if more {
		out = out[:page.Limit()]
	}
	return out, cappedTotal(count, page, len(out), more), err
}

// JobUpdate is a status change of a job with the fields that change with it.
type JobUpdate struct {
	Status        string
	FailureReason *string
	ExitCode      *int
	AllowFailure  *bool
	ScheduledAt   *time.Time
}

// SetJobStatus changes a job's status and the timestamps that follow from it:
// queued_at on pending, started_at on running, finished_at on completion.
func (t *Tx) SetJobStatus(ctx context.Context, id int64, u JobUpdate) error {
	now := Now()
	sets := []string{"status = ?"}
	args := []any{u.Status}
	switch u.Status {
	case "pending":
		sets = append(sets, "queued_at = ?")
		args = append(args, now)
	case "running":
		sets = append(sets, "started_at = COALESCE(started_at, ?)", "last_seen_at = ?")
		args = append(args, now, now)
	case "success", "failed", "canceled", "skipped":
		sets = append(sets, "finished_at = ?", "token_hash = NULL")
		args = append(args, now)
		if f := t.s.jobFinished; f != nil {
			t.AfterCommit(f)
		}
	case "scheduled":
		sets = append(sets, "scheduled_at = ?")
		args = append(args, nullTime(u.ScheduledAt))
	}
	if u.FailureReason != nil {
		sets, args = append(sets, "failure_reason = ?"), append(args, *u.FailureReason)
	}
	if u.ExitCode != nil {
		sets, args = append(sets, "exit_code = ?"), append(args, *u.ExitCode)
	}
	if u.AllowFailure != nil {
		sets, args = append(sets, "allow_failure = ?"), append(args, *u.AllowFailure)
	}
	args = append(args, id)
	_, err := t.Exec(ctx, `UPDATE jobs SET `+strings.Join(sets, ", ")+` WHERE id = ?`, args...)
	return err
}

// MarkJobRetried flags a job as superseded by a retry.
// SetJobPlay records who played a manual job and the variables they gave
// (in its spec): the job then runs as that user, as on GitLab.
func (t *Tx) SetJobPlay(ctx context.Context, id, userID int64, spec string) error {
	if spec == "" {
		return t.SetJobUser(ctx, id, userID)
	}
	_, err := t.Exec(ctx, `UPDATE jobs SET user_id = ?, spec = ? WHERE id = ?`, nullID(userID), spec, id)
	return err
}

// SetJobUser makes userID the user a job runs as (its job token acts as
// that user): jobs a retry or a play starts again run as whoever did it.
func (t *Tx) SetJobUser(ctx context.Context, id, userID int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET user_id = ? WHERE id = ?`, nullID(userID), id)
	return err
}

func (t *Tx) MarkJobRetried(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET retried = TRUE WHERE id = ?`, id)
	return err
}

// AssignJob atomically hands a pending job to a runner with a job token
// hash; it reports false when another runner took it first.
func (t *Tx) AssignJob(ctx context.Context, jobID, runnerID int64, tokenHash string) (bool, error) {
	now := Now()
	res, err := t.Exec(ctx, `UPDATE jobs SET status = 'running', runner_id = ?, token_hash = ?, started_at = ?, last_seen_at = ? WHERE id = ? AND status = 'pending'`,
		runnerID, tokenHash, now, now, jobID)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// TouchJob records that a job's runner reported in (liveness).
func (t *Tx) TouchJob(ctx context.Context, id int64, traceSize int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET last_seen_at = ?, trace_size = ? WHERE id = ?`, Now(), traceSize, id)
	return err
}

// SetJobArtifacts records an uploaded artifacts archive.
func (t *Tx) SetJobArtifacts(ctx context.Context, id int64, file string, size int64, expire *time.Time) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET artifacts_file = ?, artifacts_size = ?, artifacts_expire_at = ? WHERE id = ?`, file, size, nullTime(expire), id)
	return err
}

// SetJobDownstream links a bridge job to the pipeline it created.
func (t *Tx) SetJobDownstream(ctx context.Context, jobID, pipelineID int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET downstream_pipeline_id = ? WHERE id = ?`, pipelineID, jobID)
	return err
}

// EraseJob removes a job's trace and artifacts references and queues the
// files for removal (see FileDeletion).
func (t *Tx) EraseJob(ctx context.Context, id int64) error {
	if err := t.recordJobFiles(ctx, `id = ?`, id); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `UPDATE jobs SET erased_at = ?, artifacts_file = '', artifacts_size = 0, trace_size = 0 WHERE id = ?`, Now(), id)
	return err
}

// PendingJobs lists pending build jobs oldest first, for runners to pick from.
func (s *Store) PendingJobs(ctx context.Context, limit int) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE status = 'pending' AND kind = 'build' ORDER BY id LIMIT ?`, limit)
}

// StaleRunningJobs lists running jobs whose runner has not reported since before.
func (s *Store) StaleRunningJobs(ctx context.Context, before time.Time) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE status IN ('running', 'canceling') AND kind = 'build' AND last_seen_at < ? ORDER BY id`, before.UnixMicro())
}

// DueScheduledJobs lists delayed jobs whose time has come.
func (s *Store) DueScheduledJobs(ctx context.Context, now time.Time) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE status = 'scheduled' AND scheduled_at <= ? ORDER BY id`, now.UnixMicro())
}

// BridgesToRecover lists bridges whose after-commit follow-up may have been
// lost in a crash: ones pending since before queuedBefore (downstream not
// created yet) and running ones whose downstream pipeline has finished.
func (s *Store) BridgesToRecover(ctx context.Context, queuedBefore time.Time, limit int) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE kind = 'bridge' AND retried = FALSE AND ((status = 'pending' AND (queued_at IS NULL OR queued_at < ?))
		OR (status = 'running' AND downstream_pipeline_id IN (SELECT id FROM pipelines WHERE status IN ('success', 'failed', 'canceled', 'skipped'))))
		ORDER BY id LIMIT ?`, queuedBefore.UnixMicro(), limit)
}

// PipelineByUpstreamJob finds the pipeline a bridge created, if any.
func (s *Store) PipelineByUpstreamJob(ctx context.Context, jobID int64) (*Pipeline, error) {
	return scanPipeline(s.queryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE upstream_job_id = ? ORDER BY id LIMIT 1`, jobID))
}

// UnacknowledgedJobs lists build jobs handed to a runner before assignedBefore
// that the runner never reported on: AssignJob sets last_seen_at to
// started_at, and the runner's first update or trace moves last_seen_at on.
func (s *Store) UnacknowledgedJobs(ctx context.Context, assignedBefore time.Time) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE status = 'running' AND kind = 'build' AND last_seen_at = started_at AND started_at < ? ORDER BY id LIMIT 500`,
		assignedBefore.UnixMicro())
}

// AckJob records a runner's first report on a job it was handed: it moves
// last_seen_at off started_at, only while the job is running and still
// unacknowledged.
func (t *Tx) AckJob(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET last_seen_at = ? WHERE id = ? AND status = 'running' AND last_seen_at = started_at`, Now(), id)
	return err
}

// RequeueUnacknowledgedJob puts a running job its runner never reported on
// back to pending, revoking its job token; it reports false when the job
// has moved on meanwhile (acknowledged, canceled, requeued by another
// server), which makes it a claim too.
func (t *Tx) RequeueUnacknowledgedJob(ctx context.Context, id int64) (bool, error) {
	res, err := t.Exec(ctx, `UPDATE jobs SET status = 'pending', runner_id = NULL, token_hash = NULL, started_at = NULL, last_seen_at = NULL, queued_at = ?
		WHERE id = ? AND status = 'running' AND kind = 'build' AND last_seen_at = started_at`, Now(), id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RunningJobsOfBuiltinRunners lists build jobs running (or canceling) on the
// built-in runners whose description ends with suffix.
func (s *Store) RunningJobsOfBuiltinRunners(ctx context.Context, suffix string) ([]*Job, error) {
	return s.jobs(ctx, s.rq, `SELECT `+jobCols+` FROM jobs WHERE status IN ('running', 'canceling') AND kind = 'build'
		AND runner_id IN (SELECT id FROM runners WHERE builtin = TRUE AND description LIKE ? ESCAPE '\')
		ORDER BY id`, "%"+likeEscape(suffix))
}
