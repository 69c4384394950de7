package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Runner is a registered runner. Its authentication token is stored only as
// a hash (TokenHash).
type Runner struct {
	ID             int64
	TokenHash      string
	Description    string
	RunnerType     string // instance_type, group_type, project_type
	ProjectID      int64
	GroupID        int64
	Tags           []string
	RunUntagged    bool
	Locked         bool
	Paused         bool
	AccessLevel    string // not_protected, ref_protected
	MaximumTimeout int64  // seconds, 0 = none
	Builtin        bool
	Version        string
	Platform       string
	Architecture   string
	IPAddress      string
	ContactedAt    *time.Time
	CreatorID      int64
	CreatedAt      time.Time
}

const runnerCols = `id, token_hash, description, runner_type, COALESCE(project_id, 0), COALESCE(group_id, 0), tags, run_untagged, locked, paused,
	access_level, COALESCE(maximum_timeout, 0), builtin, version, platform, architecture, ip_address, contacted_at, COALESCE(creator_id, 0), created_at`

func scanRunner(row interface{ Scan(...any) error }) (*Runner, error) {
	var r Runner
	var tags string
	var contacted sql.NullInt64
	var created int64
	if err := row.Scan(&r.ID, &r.TokenHash, &r.Description, &r.RunnerType, &r.ProjectID, &r.GroupID, &tags, &r.RunUntagged, &r.Locked, &r.Paused,
		&r.AccessLevel, &r.MaximumTimeout, &r.Builtin, &r.Version, &r.Platform, &r.Architecture, &r.IPAddress, &contacted, &r.CreatorID, &created); err != nil {
		return nil, mapErr(err)
	}
	if tags != "" {
		r.Tags = strings.Split(tags, ",")
	}
	r.ContactedAt = TimePtr(contacted)
	r.CreatedAt = Time(created)
	return &r, nil
}

func nullInt(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: n != 0} }

// CreateRunner inserts r with the hash of its authentication token.
func (t *Tx) CreateRunner(ctx context.Context, r *Runner) error {
	now := Now()
	if r.RunnerType == "" {
		r.RunnerType = "instance_type"
	}
	if r.AccessLevel == "" {
		r.AccessLevel = "not_protected"
	}
	id, err := t.InsertID(ctx, `INSERT INTO runners (token_hash, description, runner_type, project_id, group_id, tags, run_untagged, locked, paused,
		access_level, maximum_timeout, builtin, creator_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.TokenHash, r.Description, r.RunnerType, nullID(r.ProjectID), nullID(r.GroupID), strings.Join(r.Tags, ","), r.RunUntagged, r.Locked, r.Paused,
		r.AccessLevel, nullInt(r.MaximumTimeout), r.Builtin, nullID(r.CreatorID), now)
	if err != nil {
		return err
	}
	r.ID, r.CreatedAt = id, Time(now)
	return nil
}

// UpdateRunner saves the editable settings of r.
func (t *Tx) UpdateRunner(ctx context.Context, r *Runner) error {
	_, err := t.Exec(ctx, `UPDATE runners SET description = ?, tags = ?, run_untagged = ?, locked = ?, paused = ?, access_level = ?, maximum_timeout = ? WHERE id = ?`,
		r.Description, strings.Join(r.Tags, ","), r.RunUntagged, r.Locked, r.Paused, r.AccessLevel, nullInt(r.MaximumTimeout), r.ID)
	return err
}

// SetRunnerToken replaces a runner's token hash (reset_authentication_token).
func (t *Tx) SetRunnerToken(ctx context.Context, id int64, hash string) error {
	_, err := t.Exec(ctx, `UPDATE runners SET token_hash = ? WHERE id = ?`, hash, id)
	return err
}

// DeleteRunner removes a runner; its jobs keep their runner_id for history.
func (t *Tx) DeleteRunner(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `DELETE FROM runners WHERE id = ?`, id)
	return err
}

// DeleteBuiltinRunners removes built-in runner rows whose description ends
// with suffix (this host's), or that have not been seen since before, so
// that a restart does not pile up rows.
func (t *Tx) DeleteBuiltinRunners(ctx context.Context, suffix string, before time.Time) error {
	_, err := t.Exec(ctx, `DELETE FROM runners WHERE builtin = TRUE AND (description LIKE ? ESCAPE '\' OR contacted_at IS NULL OR contacted_at < ?)`,
		"%"+likeEscape(suffix), before.UnixMicro())
	return err
}

// TouchRunner records a runner's contact and what it reported about itself.
func (t *Tx) TouchRunner(ctx context.Context, id int64, at time.Time, version, platform, arch, ip string) error {
	_, err := t.Exec(ctx, `UPDATE runners SET contacted_at = ?, version = ?, platform = ?, architecture = ?, ip_address = ? WHERE id = ?`,
		at.UnixMicro(), version, platform, arch, ip, id)
	return err
}

// RunnerByID loads a runner.
func (s *Store) RunnerByID(ctx context.Context, id int64) (*Runner, error) {
	return scanRunner(s.queryRow(ctx, `SELECT `+runnerCols+` FROM runners WHERE id = ?`, id))
}

// RunnerByTokenHash finds the runner holding a token.
func (s *Store) RunnerByTokenHash(ctx context.Context, hash string) (*Runner, error) {
	return scanRunner(s.queryRow(ctx, `SELECT `+runnerCols+` FROM runners WHERE token_hash = ?`, hash))
}

// RunnerFilter selects runners for ListRunners.
type RunnerFilter struct {
	// ManagerID, ProjectIDs and GroupIDs are OR-ed together when set:
	// "runners this user can see". All zero lists every runner.
	// ManagerID selects the runners a user manages through current
	// membership: project runners of projects they maintain (directly or
	// through the project's group) and group runners of groups they own.
	// Who created a runner plays no part (the rule of access.RunnerRights,
	// as a query).
	ManagerID  int64
	ProjectIDs []int64
	GroupIDs   []int64
	// InstanceToo adds instance runners to a scoped listing.
	InstanceToo bool
	Type        string
	Paused      *bool
	Tags        []string
}

// ListRunners lists runners by id.
func (s *Store) ListRunners(ctx context.Context, f RunnerFilter, page Page) ([]*Runner, int, error) {
	var conds, scope []string
	var args, scopeArgs []any
	if f.ManagerID != 0 {
		scope = append(scope, `(runner_type = 'project_type' AND project_id IN (
			SELECT project_id FROM project_members WHERE user_id = ? AND access_level >= ?
			UNION SELECT p.id FROM projects p JOIN group_members gm ON gm.namespace_id = p.namespace_id WHERE gm.user_id = ? AND gm.access_level >= ?
			UNION SELECT p.id FROM projects p JOIN namespaces n ON n.id = p.namespace_id WHERE n.kind = 'user' AND n.owner_id = ?))`,
			`(runner_type = 'group_type' AND group_id IN (SELECT namespace_id FROM group_members WHERE user_id = ? AND access_level >= ?))`)
		scopeArgs = append(scopeArgs, f.ManagerID, Maintainer, f.ManagerID, Maintainer, f.ManagerID, f.ManagerID, Owner)
	}
	if len(f.ProjectIDs) > 0 {
		scope = append(scope, "(runner_type = 'project_type' AND project_id IN ("+placeholders(len(f.ProjectIDs))+"))")
		for _, id := range f.ProjectIDs {
			scopeArgs = append(scopeArgs, id)
		}
	}
	if len(f.GroupIDs) > 0 {
		scope = append(scope, "(runner_type = 'group_type' AND group_id IN ("+placeholders(len(f.GroupIDs))+"))")
		for _, id := range f.GroupIDs {
			scopeArgs = append(scopeArgs, id)
		}
	}
	if f.InstanceToo {
		scope = append(scope, "runner_type = 'instance_type'")
	}
	if len(scope) > 0 {
		conds, args = append(conds, "("+strings.Join(scope, " OR ")+")"), append(args, scopeArgs...)
	}
	if f.Type != "" {
		conds, args = append(conds, "runner_type = ?"), append(args, f.Type)
	}
	if f.Paused != nil {
		conds, args = append(conds, "paused = ?"), append(args, *f.Paused)
	}
	for _, tag := range f.Tags {
		conds = append(conds, "(',' || tags || ',') LIKE ? ESCAPE '\\'")
		args = append(args, "%,"+likeEscape(tag)+",%")
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM runners`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+runnerCols+` FROM runners`+where+` ORDER BY id LIMIT ? OFFSET ?`, append(args, page.Limit(), page.Offset())...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Runner
	for rows.Next() {
		r, err := scanRunner(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// AllRunners loads every runner (the runner API caches them in memory).
func (s *Store) AllRunners(ctx context.Context) ([]*Runner, error) {
	rows, err := s.query(ctx, `SELECT `+runnerCols+` FROM runners ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Runner
	for rows.Next() {
		r, err := scanRunner(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PendingCandidates lists pending build jobs, oldest first, for a runner to
// choose from inside a write transaction. Rows are not locked here: the
// runner filters them by tags and scope first, then claims one with
// TryAssignJob.
func (t *Tx) PendingCandidates(ctx context.Context, limit int) ([]*Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE status = 'pending' AND kind = 'build' ORDER BY id LIMIT ?`
	return t.s.jobs(ctx, t.tx, t.s.rebind(q), limit)
}

// TryAssignJob hands a pending job to a runner with a job token hash. On
// PostgreSQL the row is taken with FOR UPDATE SKIP LOCKED, so that a job
// another requester is assigning right now is skipped instead of waited
// for; contended reports that case (the job may still be free later).
// SQLite has a single writer, so there is never contention.
func (t *Tx) TryAssignJob(ctx context.Context, jobID, runnerID int64, tokenHash string) (ok, contended bool, err error) {
	if t.s.Dialect != Postgres {
		ok, err = t.AssignJob(ctx, jobID, runnerID, tokenHash)
		return ok, false, err
	}
	var status string
	err = t.QueryRow(ctx, `SELECT status FROM jobs WHERE id = ? FOR UPDATE SKIP LOCKED`, jobID).Scan(&status)
	if err == sql.ErrNoRows {
		return false, true, nil
	}
	if err != nil || status != "pending" {
		return false, false, err
	}
	ok, err = t.AssignJob(ctx, jobID, runnerID, tokenHash)
	return ok, false, err
}

// ClaimStaleJob marks a stale running job as seen now, only if it is still
// in status and still unseen since before; it reports whether this caller
// won, so that one replica (and one loop iteration) fails it.
func (t *Tx) ClaimStaleJob(ctx context.Context, id int64, status string, before time.Time) (bool, error) {
	res, err := t.Exec(ctx, `UPDATE jobs SET last_seen_at = ? WHERE id = ? AND status = ? AND last_seen_at < ?`, Now(), id, status, before.UnixMicro())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ExpiredArtifacts lists jobs whose artifacts have expired.
func (s *Store) ExpiredArtifacts(ctx context.Context, now time.Time, limit int) ([]*Job, error) {
	return s.jobs(ctx, s.read, `SELECT `+jobCols+` FROM jobs WHERE artifacts_file <> '' AND artifacts_expire_at IS NOT NULL AND artifacts_expire_at < ? ORDER BY id LIMIT ?`, now.UnixMicro(), limit)
}

// ClearJobArtifacts forgets a job's artifacts archive (after its file was removed).
func (t *Tx) ClearJobArtifacts(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `UPDATE jobs SET artifacts_file = '', artifacts_size = 0, artifacts_expire_at = NULL WHERE id = ?`, id)
	return err
}

// LatestSuccessfulJob finds the newest successful job called name on ref in a
// project (for /jobs/artifacts/:ref/download?job=name).
func (s *Store) LatestSuccessfulJob(ctx context.Context, projectID int64, ref, name string) (*Job, error) {
	return scanJob(s.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = (SELECT j.id FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id
		WHERE j.project_id = ? AND p.ref = ? AND j.name = ? AND j.status = 'success' AND j.artifacts_file <> '' ORDER BY j.id DESC LIMIT 1)`, projectID, ref, name))
}

// CountJobsByStatus counts build jobs per status (for metrics).
func (s *Store) CountJobsByStatus(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM jobs WHERE kind = 'build' GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
