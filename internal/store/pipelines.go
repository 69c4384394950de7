package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"
)

// Pipeline is one run of a project's CI configuration at a commit.
type Pipeline struct {
	ID                 int64
	ProjectID          int64
	IID                int64
	Ref                string
	Tag                bool
	SHA                string
	BeforeSHA          string
	Source             string
	Status             string
	Name               string
	UserID             int64
	TriggerID          int64
	TriggerShortToken  string
	ScheduleID         int64
	UpstreamJobID      int64
	UpstreamPipelineID int64
	Protected          bool
	Warnings           bool
	YAMLErrors         string
	CommitTitle        string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	StartedAt          *time.Time
	FinishedAt         *time.Time
	CommittedAt        *time.Time
	Duration           *int64 // seconds
	QueuedDuration     *int64 // seconds
}

const pipelineCols = `id, project_id, iid, ref, tag, sha, before_sha, source, status, name, COALESCE(user_id, 0), COALESCE(trigger_id, 0), trigger_short_token,
	COALESCE(schedule_id, 0), COALESCE(upstream_job_id, 0), COALESCE(upstream_pipeline_id, 0), protected, warnings, yaml_errors, commit_title,
	created_at, updated_at, started_at, finished_at, committed_at, duration, queued_duration`

func scanPipeline(row interface{ Scan(...any) error }) (*Pipeline, error) {
	var p Pipeline
	var created, updated int64
	var started, finished, committed, dur, qdur sql.NullInt64
	if err := row.Scan(&p.ID, &p.ProjectID, &p.IID, &p.Ref, &p.Tag, &p.SHA, &p.BeforeSHA, &p.Source, &p.Status, &p.Name, &p.UserID, &p.TriggerID, &p.TriggerShortToken,
		&p.ScheduleID, &p.UpstreamJobID, &p.UpstreamPipelineID, &p.Protected, &p.Warnings, &p.YAMLErrors, &p.CommitTitle,
		&created, &updated, &started, &finished, &committed, &dur, &qdur); err != nil {
		return nil, mapErr(err)
	}
	p.CreatedAt, p.UpdatedAt = Time(created), Time(updated)
	p.StartedAt, p.FinishedAt, p.CommittedAt = TimePtr(started), TimePtr(finished), TimePtr(committed)
	if dur.Valid {
		p.Duration = &dur.Int64
	}
	if qdur.Valid {
		p.QueuedDuration = &qdur.Int64
	}
	return &p, nil
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

func nullTime(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// ReserveIID takes the project's next pipeline iid, and on PostgreSQL the
// pipeline's id with it, to be set on the Pipeline before InsertPipeline.
// It must not be called inside a Write callback.
//
// On SQLite it returns zeros: the iid is taken inside the creating
// transaction, where it costs nothing (one writer, group commit).
//
// On PostgreSQL one statement increments the project's counter
// (projects.pipeline_iid, as GitLab's internal_ids) and draws the id from
// the pipelines sequence while it holds the counter row: every replica
// passes through that row, so iids are unique and strictly increasing in
// id order across replicas. The statement commits on its own, without
// waiting for its WAL flush (synchronous_commit off for that transaction
// only): the creating transaction commits later, and its durable commit
// flushes the WAL up to and including the counter's, so no committed
// pipeline's iid can be handed out twice, even after a crash. Taking the
// iid inside the creating transaction instead would hold the row until
// that commit's fsync and serialise a project's creations one fsync at a
// time (measured: 3-5 times fewer pipelines/s, docs/benchmarks.md).
//
// What this does not promise: two creations in flight commit in either
// order, so for a moment a reader may see iid n+1 before n; a creation
// that fails leaves a gap.
func (s *Store) ReserveIID(ctx context.Context, projectID int64) (id, iid int64, err error) {
	if s.Dialect != Postgres {
		return 0, 0, nil
	}
	err = s.write.QueryRowContext(ctx, `UPDATE projects SET pipeline_iid = projects.pipeline_iid + 1
		FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async
		WHERE projects.id = $1 RETURNING projects.pipeline_iid, nextval('pipelines_id_seq')`, projectID).Scan(&iid, &id)
	return id, iid, mapErr(err)
}

// InsertPipeline inserts p. With p.ID and p.IID set by ReserveIID it
// uses them; otherwise it takes the project's next iid from the same
// counter inside this transaction (the row stays locked until commit, so
// the id the insert draws afterwards is in iid order too).
func (t *Tx) InsertPipeline(ctx context.Context, p *Pipeline) error {
	if p.ID != 0 && p.IID != 0 {
		return t.insertPipeline(ctx, p, p.ID, p.IID)
	}
	var iid int64
	if err := t.QueryRow(ctx, `UPDATE projects SET pipeline_iid = pipeline_iid + 1 WHERE id = ? RETURNING pipeline_iid`, p.ProjectID).Scan(&iid); err != nil {
		return mapErr(err)
	}
	return t.insertPipeline(ctx, p, 0, iid)
}

func (t *Tx) insertPipeline(ctx context.Context, p *Pipeline, id, iid int64) error {
	now := Now()
	// A reserved id goes in explicitly; otherwise the column's default.
	cols, marks, args := "", "", []any{}
	if id != 0 {
		cols, marks, args = "id, ", "?, ", []any{id}
	}
	id, err := t.InsertID(ctx, `INSERT INTO pipelines (`+cols+`project_id, iid, ref, tag, sha, before_sha, source, status, name, user_id, trigger_id, trigger_short_token,
		schedule_id, upstream_job_id, upstream_pipeline_id, protected, yaml_errors, commit_title, created_at, updated_at, committed_at)
		VALUES (`+marks+`?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append(args, p.ProjectID, iid, p.Ref, p.Tag, p.SHA, p.BeforeSHA, p.Source, p.Status, p.Name, nullID(p.UserID), nullID(p.TriggerID), p.TriggerShortToken,
			nullID(p.ScheduleID), nullID(p.UpstreamJobID), nullID(p.UpstreamPipelineID), p.Protected, p.YAMLErrors, p.CommitTitle, now, now, nullTime(p.CommittedAt))...)
	if err != nil {
		return err
	}
	p.ID, p.IID, p.CreatedAt, p.UpdatedAt = id, iid, Time(now), Time(now)
	return nil
}

// UpdatePipelineState saves the status fields the state machine derives.
func (t *Tx) UpdatePipelineState(ctx context.Context, p *Pipeline) error {
	now := Now()
	var dur, qdur sql.NullInt64
	if p.Duration != nil {
		dur = sql.NullInt64{Int64: *p.Duration, Valid: true}
	}
	if p.QueuedDuration != nil {
		qdur = sql.NullInt64{Int64: *p.QueuedDuration, Valid: true}
	}
	_, err := t.Exec(ctx, `UPDATE pipelines SET status = ?, warnings = ?, started_at = ?, finished_at = ?, duration = ?, queued_duration = ?, updated_at = ? WHERE id = ?`,
		p.Status, p.Warnings, nullTime(p.StartedAt), nullTime(p.FinishedAt), dur, qdur, now, p.ID)
	p.UpdatedAt = Time(now)
	return err
}

// LockPipeline loads a pipeline for update, serialising concurrent state
// changes of one pipeline (a row lock on PostgreSQL; SQLite has one writer).
func (t *Tx) LockPipeline(ctx context.Context, id int64) (*Pipeline, error) {
	q := `SELECT ` + pipelineCols + ` FROM pipelines WHERE id = ?`
	if t.s.Dialect == Postgres {
		q += ` FOR UPDATE`
	}
	return scanPipeline(t.QueryRow(ctx, q, id))
}

// PipelineByID loads a pipeline.
func (s *Store) PipelineByID(ctx context.Context, id int64) (*Pipeline, error) {
	return scanPipeline(s.queryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE id = ?`, id))
}

// PipelineFilter selects pipelines for ListPipelines.
type PipelineFilter struct {
	ProjectID     int64
	Status        []string
	Source        string
	Ref           string
	SHA           string
	UserID        int64
	TriggerID     int64
	ScheduleID    int64
	UpdatedAfter  *time.Time
	UpdatedBefore *time.Time
	Scope         string // running, pending, finished, branches, tags
	OrderBy       string // id, status, ref, updated_at, user_id
	Sort          string // asc, desc
}

// ListPipelines lists a project's pipelines, newest first by default. The
// total is exact up to TotalCap, a lower bound beyond it.
func (s *Store) ListPipelines(ctx context.Context, f PipelineFilter, page Page) ([]*Pipeline, int, error) {
	conds := []string{"project_id = ?"}
	args := []any{f.ProjectID}
	if len(f.Status) > 0 {
		conds = append(conds, "status IN ("+placeholders(len(f.Status))+")")
		for _, st := range f.Status {
			args = append(args, st)
		}
	}
	add := func(cond string, v any) { conds = append(conds, cond); args = append(args, v) }
	if f.Source != "" {
		add("source = ?", f.Source)
	}
	if f.Ref != "" {
		add("ref = ?", f.Ref)
	}
	if f.SHA != "" {
		add("sha = ?", f.SHA)
	}
	if f.UserID != 0 {
		add("user_id = ?", f.UserID)
	}
	if f.TriggerID != 0 {
		add("trigger_id = ?", f.TriggerID)
	}
	if f.ScheduleID != 0 {
		add("schedule_id = ?", f.ScheduleID)
	}
	if f.UpdatedAfter != nil {
		add("updated_at > ?", f.UpdatedAfter.UnixMicro())
	}
	if f.UpdatedBefore != nil {
		add("updated_at < ?", f.UpdatedBefore.UnixMicro())
	}
	switch f.Scope {
	case "running":
		conds = append(conds, "status = 'running'")
	case "pending":
		conds = append(conds, "status = 'pending'")
	case "finished":
		conds = append(conds, "status IN ('success', 'failed', 'canceled', 'skipped')")
	case "branches":
		conds = append(conds, "tag = FALSE")
	case "tags":
		conds = append(conds, "tag = TRUE")
	}
	where := " WHERE " + strings.Join(conds, " AND ")
	count, err := s.countCapped(ctx, "pipelines", where, args)
	if err != nil {
		return nil, 0, err
	}
	order := map[string]string{"id": "id", "status": "status", "ref": "ref", "updated_at": "updated_at", "user_id": "user_id"}[f.OrderBy]
	if order == "" {
		order = "id"
	}
	dir := "DESC"
	if f.Sort == "asc" {
		dir = "ASC"
	}
	orderBy := order + " " + dir
	if order != "id" {
		orderBy += ", id " + dir
	}
	// One row beyond the page tells whether a next page exists when the
	// total is not counted exactly.
	rows, err := s.query(ctx, `SELECT `+pipelineCols+` FROM pipelines`+where+` ORDER BY `+orderBy+` LIMIT ? OFFSET ?`, append(args, page.Limit()+1, page.Offset())...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Pipeline
	for rows.Next() {
		p, err := scanPipeline(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, p)
	}
	more := len(out) > page.Limit()
	if more {
		out = out[:page.Limit()]
	}
	return out, cappedTotal(count, page, len(out), more), rows.Err()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// DeletePipeline removes a pipeline and its jobs and variables, and queues
// the jobs' traces and artifacts for removal (see FileDeletion) in the same
// transaction.
func (t *Tx) DeletePipeline(ctx context.Context, id int64) error {
	if err := t.recordJobFiles(ctx, `pipeline_id = ?`, id); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `INSERT INTO file_deletions (project_path, git_ref, created_at)
		SELECT p.full_path, ?, ? FROM pipelines pl JOIN projects p ON p.id = pl.project_id WHERE pl.id = ?`,
		"refs/pipelines/"+strconv.FormatInt(id, 10), Now(), id); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM jobs WHERE pipeline_id = ?`, id); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM pipeline_variables WHERE pipeline_id = ?`, id); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM pipelines WHERE id = ?`, id)
	return err
}

// PipelineVariable is a variable given when a pipeline was created; the
// value is stored encrypted by the caller.
type PipelineVariable struct {
	Key          string
	ValueEnc     string
	VariableType string
}

// InsertPipelineVariables stores a pipeline's variables.
func (t *Tx) InsertPipelineVariables(ctx context.Context, pipelineID int64, vars []PipelineVariable) error {
	for _, v := range vars {
		if _, err := t.Exec(ctx, `INSERT INTO pipeline_variables (pipeline_id, key, value_enc, variable_type) VALUES (?, ?, ?, ?)`, pipelineID, v.Key, v.ValueEnc, v.VariableType); err != nil {
			return err
		}
	}
	return nil
}

// PipelineVariables loads a pipeline's variables in key order.
func (s *Store) PipelineVariables(ctx context.Context, pipelineID int64) ([]PipelineVariable, error) {
	rows, err := s.query(ctx, `SELECT key, value_enc, variable_type FROM pipeline_variables WHERE pipeline_id = ? ORDER BY key`, pipelineID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PipelineVariable
	for rows.Next() {
		var v PipelineVariable
		if err := rows.Scan(&v.Key, &v.ValueEnc, &v.VariableType); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
