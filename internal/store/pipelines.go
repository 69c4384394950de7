package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
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

// iidBlock is how many pipeline iids a PostgreSQL server reserves at once.
const iidBlock = 64

type iidRange struct{ next, end int64 }

// iidAllocator hands out per-project pipeline iids on PostgreSQL from
// blocks reserved in short transactions of their own. Incrementing the
// project row inside every pipeline's transaction would hold that row's lock
// until commit and serialise all pipelines of a project behind one fsync
// each; with blocks, iids stay unique and increasing per server, and a
// restart or a second replica only leaves gaps, as GitLab's iids may have.
type iidAllocator struct {
	mu sync.Mutex
	m  map[int64]*iidRange
}

func (s *Store) nextIID(ctx context.Context, projectID int64) (int64, error) {
	a := &s.iids
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[int64]*iidRange{}
	}
	r := a.m[projectID]
	if r == nil || r.next > r.end {
		var end int64
		if err := s.write.QueryRowContext(ctx, s.rebind(`UPDATE projects SET pipeline_iid = pipeline_iid + ? WHERE id = ? RETURNING pipeline_iid`), iidBlock, projectID).Scan(&end); err != nil {
			return 0, mapErr(err)
		}
		r = &iidRange{next: end - iidBlock + 1, end: end}
		a.m[projectID] = r
	}
	iid := r.next
	r.next++
	return iid, nil
}

// ReserveIID returns a pipeline iid for the project reserved outside any
// transaction on PostgreSQL (see iidAllocator), to be set as Pipeline.IID
// before InsertPipeline; on SQLite it returns 0 and the iid is allocated
// inside the transaction, where it costs nothing. It must not be called
// inside a Write callback: it may need a pool connection of its own.
func (s *Store) ReserveIID(ctx context.Context, projectID int64) (int64, error) {
	if s.Dialect != Postgres {
		return 0, nil
	}
	return s.nextIID(ctx, projectID)
}

// InsertPipeline inserts p with p.IID when reserved, otherwise with the
// project's next iid. The in-transaction increment and reserved blocks never
// overlap: both advance the same counter.
func (t *Tx) InsertPipeline(ctx context.Context, p *Pipeline) error {
	iid := p.IID
	if iid == 0 {
		if err := t.QueryRow(ctx, `UPDATE projects SET pipeline_iid = pipeline_iid + 1 WHERE id = ? RETURNING pipeline_iid`, p.ProjectID).Scan(&iid); err != nil {
			return mapErr(err)
		}
	}
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO pipelines (project_id, iid, ref, tag, sha, before_sha, source, status, name, user_id, trigger_id, trigger_short_token,
		schedule_id, upstream_job_id, upstream_pipeline_id, protected, yaml_errors, commit_title, created_at, updated_at, committed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ProjectID, iid, p.Ref, p.Tag, p.SHA, p.BeforeSHA, p.Source, p.Status, p.Name, nullID(p.UserID), nullID(p.TriggerID), p.TriggerShortToken,
		nullID(p.ScheduleID), nullID(p.UpstreamJobID), nullID(p.UpstreamPipelineID), p.Protected, p.YAMLErrors, p.CommitTitle, now, now, nullTime(p.CommittedAt))
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
