package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Schedule is a pipeline schedule: a cron expression in a time zone that
// creates pipelines for Ref as its owner.
type Schedule struct {
	ID           int64
	ProjectID    int64
	Description  string
	Ref          string // full ref as GitLab stores it ("refs/heads/main"), or as given when it did not resolve
	Cron         string
	CronTimezone string // IANA name
	Active       bool
	OwnerID      int64
	// NextRunAt is when the scheduler fires next. The scheduler keeps it in
	// the future; writers changing Cron, CronTimezone or Active recompute it.
	NextRunAt      time.Time
	LastPipelineID int64  // 0: none yet
	LastError      string // why the latest run created no pipeline ("" after a success)
	// Inputs are the values for the CI file's `spec: inputs:`, a JSON
	// object ("" for none).
	Inputs    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ScheduleVariable is a variable passed to every pipeline of a schedule;
// ValueEnc is sealed by the caller (secrets.Box).
type ScheduleVariable struct {
	Key          string
	ValueEnc     string
	VariableType string // env_var or file
}

// ScheduleRun is one attempt to run a schedule, from the cron loop or play.
type ScheduleRun struct {
	ID           int64
	ScheduleID   int64
	ProjectID    int64
	Kind         string     // RunCron or RunPlay
	ScheduledFor *time.Time // the due time that was claimed (cron runs only)
	UserID       int64      // whom the pipeline runs as
	Result       string     // RunRunning, RunCreated, RunFailed or RunSkipped
	Reason       string
	PipelineID   int64
	CreatedAt    time.Time
	FinishedAt   *time.Time
}

// Kinds and results of schedule runs.
const (
	RunCron    = "schedule"
	RunPlay    = "play"
	RunRunning = "running" // claimed; the pipeline is being created
	RunCreated = "created"
	RunFailed  = "failed"  // the pipeline could not be created (Reason says why)
	RunSkipped = "skipped" // not attempted, e.g. the owner lost access
)

// keepRuns is how many runs per schedule the log keeps.
const keepRuns = 100

const scheduleCols = `id, project_id, description, ref, cron, cron_timezone, active, owner_id, next_run_at,
	COALESCE(last_pipeline_id, 0), last_error, created_at, updated_at, inputs`

func scanSchedule(row interface{ Scan(...any) error }) (*Schedule, error) {
	var sc Schedule
	var next, created, updated int64
	if err := row.Scan(&sc.ID, &sc.ProjectID, &sc.Description, &sc.Ref, &sc.Cron, &sc.CronTimezone, &sc.Active, &sc.OwnerID, &next,
		&sc.LastPipelineID, &sc.LastError, &created, &updated, &sc.Inputs); err != nil {
		return nil, mapErr(err)
	}
	sc.NextRunAt, sc.CreatedAt, sc.UpdatedAt = Time(next), Time(created), Time(updated)
	return &sc, nil
}

func (s *Store) schedules(ctx context.Context, q string, args ...any) ([]*Schedule, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// MaxSchedulesPerProject bounds a project's pipeline schedules (GitLab's
// ci_pipeline_schedules plan limit, 50 on GitLab.com's paid plans).
const MaxSchedulesPerProject = 50

// LimitError is a plan limit reached; Error is GitLab's message.
type LimitError struct{ Message string }

func (e *LimitError) Error() string { return e.Message }

// CreateSchedule inserts sc (ID, CreatedAt and UpdatedAt are set). The
// caller computes NextRunAt and should wake the scheduler after commit. A
// project already at MaxSchedulesPerProject gets a *LimitError.
func (t *Tx) CreateSchedule(ctx context.Context, sc *Schedule) error {
	var n int
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM pipeline_schedules WHERE project_id = ?`, sc.ProjectID).Scan(&n); err != nil {
		return err
	}
	if n >= MaxSchedulesPerProject {
		return &LimitError{Message: fmt.Sprintf("Maximum number of ci pipeline schedules (%d) exceeded", MaxSchedulesPerProject)}
	}
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO pipeline_schedules (project_id, description, ref, cron, cron_timezone, active, owner_id, next_run_at, last_error, created_at, updated_at, inputs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)`,
		sc.ProjectID, sc.Description, sc.Ref, sc.Cron, sc.CronTimezone, sc.Active, sc.OwnerID, sc.NextRunAt.UnixMicro(), now, now, sc.Inputs)
	if err != nil {
		return err
	}
	sc.ID, sc.CreatedAt, sc.UpdatedAt = id, Time(now), Time(now)
	return nil
}

// UpdateSchedule saves the user-editable fields of sc (description, ref,
// cron, zone, active, owner, next run) and bumps UpdatedAt.
func (t *Tx) UpdateSchedule(ctx context.Context, sc *Schedule) error {
	now := Now()
	res, err := t.Exec(ctx, `UPDATE pipeline_schedules SET description = ?, ref = ?, cron = ?, cron_timezone = ?, active = ?, owner_id = ?, next_run_at = ?, updated_at = ?, inputs = ?
		WHERE id = ?`, sc.Description, sc.Ref, sc.Cron, sc.CronTimezone, sc.Active, sc.OwnerID, sc.NextRunAt.UnixMicro(), now, sc.Inputs, sc.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	sc.UpdatedAt = Time(now)
	return nil
}

// DeleteSchedule removes a schedule with its variables and run log. Its
// pipelines stay but no longer point at it (GitLab nullifies them too), so a
// later schedule that reuses the id does not inherit them.
func (t *Tx) DeleteSchedule(ctx context.Context, projectID, id int64) error {
	if _, err := t.Exec(ctx, `UPDATE pipelines SET schedule_id = NULL WHERE project_id = ? AND schedule_id = ?`, projectID, id); err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM pipeline_schedule_variables WHERE schedule_id = ?`, `DELETE FROM pipeline_schedule_runs WHERE schedule_id = ?`} {
		if _, err := t.Exec(ctx, q, id); err != nil {
			return err
		}
	}
	res, err := t.Exec(ctx, `DELETE FROM pipeline_schedules WHERE id = ? AND project_id = ?`, id, projectID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ScheduleByID loads a schedule.
func (s *Store) ScheduleByID(ctx context.Context, id int64) (*Schedule, error) {
	return scanSchedule(s.queryRow(ctx, `SELECT `+scheduleCols+` FROM pipeline_schedules WHERE id = ?`, id))
}

// ProjectSchedule loads a schedule of a project; a schedule of another
// project is ErrNotFound.
func (s *Store) ProjectSchedule(ctx context.Context, projectID, id int64) (*Schedule, error) {
	return scanSchedule(s.queryRow(ctx, `SELECT `+scheduleCols+` FROM pipeline_schedules WHERE id = ? AND project_id = ?`, id, projectID))
}

// ScheduleFilter selects schedules for ListSchedules.
type ScheduleFilter struct {
	ProjectID int64
	Scope     string // "", "active" or "inactive"
}

// ListSchedules lists a project's schedules by id, with the total count.
func (s *Store) ListSchedules(ctx context.Context, f ScheduleFilter, page Page) ([]*Schedule, int, error) {
	where := ` WHERE project_id = ?`
	args := []any{f.ProjectID}
	switch f.Scope {
	case "active":
		where += ` AND active = TRUE`
	case "inactive":
		where += ` AND active = FALSE`
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM pipeline_schedules`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := s.schedules(ctx, `SELECT `+scheduleCols+` FROM pipeline_schedules`+where+` ORDER BY id LIMIT ? OFFSET ?`, append(args, page.Limit(), page.Offset())...)
	return out, total, err
}

// NextScheduleRun returns the earliest next_run_at of any active schedule
// (one index lookup); ok is false when no schedule is active.
func (s *Store) NextScheduleRun(ctx context.Context) (next time.Time, ok bool, err error) {
	var us sql.NullInt64
	if err := s.queryRow(ctx, `SELECT MIN(next_run_at) FROM pipeline_schedules WHERE active = TRUE`).Scan(&us); err != nil {
		return time.Time{}, false, err
	}
	if !us.Valid {
		return time.Time{}, false, nil
	}
	return Time(us.Int64), true, nil
}

// DueSchedules returns up to limit active schedules whose next run is at or
// before now, earliest first. Reading them claims nothing: see ClaimScheduleRun.
func (s *Store) DueSchedules(ctx context.Context, now time.Time, limit int) ([]*Schedule, error) {
	return s.schedules(ctx, `SELECT `+scheduleCols+` FROM pipeline_schedules WHERE active = TRUE AND next_run_at <= ? ORDER BY next_run_at, id LIMIT ?`,
		now.UnixMicro(), limit)
}

// ClaimScheduleRun is how exactly one server fires a due time: it moves the
// schedule's next_run_at from due to next only if it still is due (and the
// schedule still active), and in the same transaction logs a run for the
// slot. It returns the run's id, or 0 when another server (or an edit) got
// there first. The conditional UPDATE serialises claimants on the row
// (PostgreSQL re-checks the WHERE after a concurrent update; SQLite has one
// writer), and the unique (schedule_id, scheduled_for) index backs it up.
func (t *Tx) ClaimScheduleRun(ctx context.Context, sc *Schedule, due, next time.Time, userID int64) (int64, error) {
	res, err := t.Exec(ctx, `UPDATE pipeline_schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ? AND active = TRUE`,
		next.UnixMicro(), sc.ID, due.UnixMicro())
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, nil
	}
	id, err := t.insertRun(ctx, sc, RunCron, sql.NullInt64{Int64: due.UnixMicro(), Valid: true}, userID)
	if errors.Is(err, ErrNotFound) {
		// The slot already has a run (only if a clock went backwards): keep
		// the moved next_run_at so the loop makes progress, fire nothing.
		return 0, nil
	}
	return id, err
}

// StartPlayRun logs an on-demand run ("play") of a schedule.
func (t *Tx) StartPlayRun(ctx context.Context, sc *Schedule, userID int64) (int64, error) {
	return t.insertRun(ctx, sc, RunPlay, sql.NullInt64{}, userID)
}

func (t *Tx) insertRun(ctx context.Context, sc *Schedule, kind string, slot sql.NullInt64, userID int64) (int64, error) {
	id, err := t.InsertID(ctx, `INSERT INTO pipeline_schedule_runs (schedule_id, project_id, kind, scheduled_for, user_id, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (schedule_id, scheduled_for) DO NOTHING`,
		sc.ID, sc.ProjectID, kind, slot, nullID(userID), RunRunning, Now())
	if err != nil {
		return 0, err
	}
	// Bound the log: drop all but the newest keepRuns runs of this schedule.
	_, err = t.Exec(ctx, `DELETE FROM pipeline_schedule_runs WHERE schedule_id = ? AND id <= (
		SELECT id FROM pipeline_schedule_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, sc.ID, sc.ID, keepRuns)
	return id, err
}

// FinishScheduleRun records a run's outcome and the schedule's last result:
// a created pipeline becomes last_pipeline_id and clears last_error; a
// failure or skip sets last_error = reason and keeps the last pipeline.
func (t *Tx) FinishScheduleRun(ctx context.Context, scheduleID, runID int64, result, reason string, pipelineID int64) error {
	if runID != 0 {
		if _, err := t.Exec(ctx, `UPDATE pipeline_schedule_runs SET result = ?, reason = ?, pipeline_id = ?, finished_at = ? WHERE id = ?`,
			result, reason, nullID(pipelineID), Now(), runID); err != nil {
			return err
		}
	}
	if pipelineID != 0 {
		_, err := t.Exec(ctx, `UPDATE pipeline_schedules SET last_pipeline_id = ?, last_error = '' WHERE id = ?`, pipelineID, scheduleID)
		return err
	}
	_, err := t.Exec(ctx, `UPDATE pipeline_schedules SET last_error = ? WHERE id = ?`, reason, scheduleID)
	return err
}

// SetScheduleNextRun moves a schedule's next run without logging a run
// (used when a schedule cannot be computed any more and is deactivated).
func (t *Tx) SetScheduleNextRun(ctx context.Context, id int64, next time.Time, active bool, lastError string) error {
	_, err := t.Exec(ctx, `UPDATE pipeline_schedules SET next_run_at = ?, active = ?, last_error = ? WHERE id = ?`, next.UnixMicro(), active, lastError, id)
	return err
}

// ScheduleRuns returns a schedule's newest runs first (at most limit).
func (s *Store) ScheduleRuns(ctx context.Context, scheduleID int64, limit int) ([]*ScheduleRun, error) {
	rows, err := s.query(ctx, `SELECT id, schedule_id, project_id, kind, scheduled_for, COALESCE(user_id, 0), result, reason, COALESCE(pipeline_id, 0), created_at, finished_at
		FROM pipeline_schedule_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?`, scheduleID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ScheduleRun
	for rows.Next() {
		var r ScheduleRun
		var slot, finished sql.NullInt64
		var created int64
		if err := rows.Scan(&r.ID, &r.ScheduleID, &r.ProjectID, &r.Kind, &slot, &r.UserID, &r.Result, &r.Reason, &r.PipelineID, &created, &finished); err != nil {
			return nil, err
		}
		r.ScheduledFor, r.FinishedAt, r.CreatedAt = TimePtr(slot), TimePtr(finished), Time(created)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// ScheduleVariables loads a schedule's variables in key order.
func (s *Store) ScheduleVariables(ctx context.Context, scheduleID int64) ([]ScheduleVariable, error) {
	rows, err := s.query(ctx, `SELECT key, value_enc, variable_type FROM pipeline_schedule_variables WHERE schedule_id = ? ORDER BY key`, scheduleID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ScheduleVariable
	for rows.Next() {
		var v ScheduleVariable
		if err := rows.Scan(&v.Key, &v.ValueEnc, &v.VariableType); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// CreateScheduleVariable adds a variable; an existing key is ErrConflict.
func (t *Tx) CreateScheduleVariable(ctx context.Context, scheduleID int64, v ScheduleVariable) error {
	_, err := t.Exec(ctx, `INSERT INTO pipeline_schedule_variables (schedule_id, key, value_enc, variable_type) VALUES (?, ?, ?, ?)`,
		scheduleID, v.Key, v.ValueEnc, v.VariableType)
	return err
}

// UpdateScheduleVariable replaces a variable's value and type; a missing key is ErrNotFound.
func (t *Tx) UpdateScheduleVariable(ctx context.Context, scheduleID int64, v ScheduleVariable) error {
	res, err := t.Exec(ctx, `UPDATE pipeline_schedule_variables SET value_enc = ?, variable_type = ? WHERE schedule_id = ? AND key = ?`,
		v.ValueEnc, v.VariableType, scheduleID, v.Key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteScheduleVariable removes a variable; a missing key is ErrNotFound.
func (t *Tx) DeleteScheduleVariable(ctx context.Context, scheduleID int64, key string) error {
	res, err := t.Exec(ctx, `DELETE FROM pipeline_schedule_variables WHERE schedule_id = ? AND key = ?`, scheduleID, key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetScheduleOwner changes only a schedule's owner, so that taking ownership
// never writes back a stale copy of the rest of the row (its next run time
// in particular, which the scheduler may have moved meanwhile).
func (t *Tx) SetScheduleOwner(ctx context.Context, id, ownerID int64) error {
	_, err := t.Exec(ctx, `UPDATE pipeline_schedules SET owner_id = ?, last_error = '', updated_at = ? WHERE id = ?`, ownerID, Now(), id)
	return err
}
