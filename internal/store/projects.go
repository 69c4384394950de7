package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Access levels, as GitLab numbers them.
const (
	NoAccess   = 0
	Guest      = 10
	Reporter   = 20
	Developer  = 30
	Maintainer = 40
	Owner      = 50
)

// Namespace is a user's personal namespace or a group.
type Namespace struct {
	ID          int64
	Name        string
	Path        string
	FullPath    string
	Kind        string // "user" or "group"
	OwnerID     int64
	Visibility  string
	Description string
	CreatedAt   time.Time
}

const nsCols = `id, name, path, full_path, kind, COALESCE(owner_id, 0), visibility, description, created_at`

func scanNamespace(row interface{ Scan(...any) error }) (*Namespace, error) {
	var n Namespace
	var created int64
	if err := row.Scan(&n.ID, &n.Name, &n.Path, &n.FullPath, &n.Kind, &n.OwnerID, &n.Visibility, &n.Description, &created); err != nil {
		return nil, mapErr(err)
	}
	n.CreatedAt = Time(created)
	return &n, nil
}

// CreateGroup inserts a group and makes creator its owner.
func (t *Tx) CreateGroup(ctx context.Context, n *Namespace, creatorID int64) error {
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO namespaces (name, path, full_path, kind, owner_id, visibility, description, created_at) VALUES (?, ?, ?, 'group', ?, ?, ?, ?)`,
		n.Name, n.Path, strings.ToLower(n.FullPath), creatorID, n.Visibility, n.Description, now)
	if err != nil {
		return err
	}
	n.ID, n.Kind, n.OwnerID, n.CreatedAt = id, "group", creatorID, Time(now)
	return t.SetGroupMember(ctx, id, creatorID, Owner)
}

// NamespaceByID loads a namespace.
func (s *Store) NamespaceByID(ctx context.Context, id int64) (*Namespace, error) {
	return scanNamespace(s.queryRow(ctx, `SELECT `+nsCols+` FROM namespaces WHERE id = ?`, id))
}

// NamespaceByPath loads a namespace by its full path (case-insensitive).
func (s *Store) NamespaceByPath(ctx context.Context, path string) (*Namespace, error) {
	return scanNamespace(s.queryRow(ctx, `SELECT `+nsCols+` FROM namespaces WHERE full_path = ?`, strings.ToLower(path)))
}

// UserNamespace returns a user's personal namespace.
func (s *Store) UserNamespace(ctx context.Context, userID int64) (*Namespace, error) {
	return scanNamespace(s.queryRow(ctx, `SELECT `+nsCols+` FROM namespaces WHERE kind = 'user' AND owner_id = ?`, userID))
}

// ListGroups lists groups the user belongs to (all groups for admins).
func (s *Store) ListGroups(ctx context.Context, userID int64, admin bool, page Page) ([]*Namespace, int, error) {
	where, args := ` WHERE kind = 'group'`, []any{}
	if !admin {
		where += ` AND (visibility = 'public' OR id IN (SELECT namespace_id FROM group_members WHERE user_id = ?))`
		args = append(args, userID)
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM namespaces`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+nsCols+` FROM namespaces`+where+` ORDER BY id LIMIT ? OFFSET ?`, append(args, page.Limit(), page.Offset())...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Namespace
	for rows.Next() {
		n, err := scanNamespace(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, n)
	}
	return out, total, rows.Err()
}

// Member is a user's membership with an access level.
type Member struct {
	User        *User
	AccessLevel int
	CreatedAt   time.Time
}

// SetGroupMember adds or updates a group membership.
func (t *Tx) SetGroupMember(ctx context.Context, nsID, userID int64, level int) error {
	_, err := t.Exec(ctx, `INSERT INTO group_members (namespace_id, user_id, access_level, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (namespace_id, user_id) DO UPDATE SET access_level = excluded.access_level`, nsID, userID, level, Now())
	return err
}

// SetProjectMember adds or updates a project membership.
func (t *Tx) SetProjectMember(ctx context.Context, projectID, userID int64, level int) error {
	_, err := t.Exec(ctx, `INSERT INTO project_members (project_id, user_id, access_level, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (project_id, user_id) DO UPDATE SET access_level = excluded.access_level`, projectID, userID, level, Now())
	return err
}

// RemoveProjectMember deletes a project membership.
func (t *Tx) RemoveProjectMember(ctx context.Context, projectID, userID int64) error {
	res, err := t.Exec(ctx, `DELETE FROM project_members WHERE project_id = ? AND user_id = ?`, projectID, userID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RemoveGroupMember deletes a group membership.
func (t *Tx) RemoveGroupMember(ctx context.Context, nsID, userID int64) error {
	res, err := t.Exec(ctx, `DELETE FROM group_members WHERE namespace_id = ? AND user_id = ?`, nsID, userID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *Store) members(ctx context.Context, table, col string, id int64) ([]Member, error) {
	rows, err := s.query(ctx, `SELECT m.access_level, m.created_at, `+prefixCols("u.", userCols)+` FROM `+table+` m JOIN users u ON u.id = m.user_id WHERE m.`+col+` = ? ORDER BY u.id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var u User
		var created, ucreated int64
		if err := rows.Scan(&m.AccessLevel, &created, &u.ID, &u.Username, &u.Name, &u.Email, &u.IsAdmin, &u.State, &u.PasswordHash, &ucreated); err != nil {
			return nil, err
		}
		u.CreatedAt, m.CreatedAt, m.User = Time(ucreated), Time(created), &u
		out = append(out, m)
	}
	return out, rows.Err()
}

// ProjectMembers lists direct project members.
func (s *Store) ProjectMembers(ctx context.Context, projectID int64) ([]Member, error) {
	return s.members(ctx, "project_members", "project_id", projectID)
}

// GroupMembers lists group members.
func (s *Store) GroupMembers(ctx context.Context, nsID int64) ([]Member, error) {
	return s.members(ctx, "group_members", "namespace_id", nsID)
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// Project is a repository with CI.
type Project struct {
	ID                int64
	NamespaceID       int64
	Name              string
	Path              string
	FullPath          string
	Description       string
	Visibility        string
	DefaultBranch     string
	CreatorID         int64
	CIConfigPath      string
	JobTokenAllowlist bool
	// SeparatedCaches is ci_separated_caches: protected and unprotected
	// refs use different caches (default true).
	SeparatedCaches bool
	// VariablesMinRole is ci_pipeline_variables_minimum_override_role:
	// no_one_allowed, developer (default), maintainer or owner.
	VariablesMinRole string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

const projectCols = `id, namespace_id, name, path, full_path, description, visibility, default_branch, creator_id, ci_config_path, job_token_allowlist, ci_separated_caches, ci_variables_min_role, created_at, updated_at`

func scanProject(row interface{ Scan(...any) error }) (*Project, error) {
	var p Project
	var created, updated int64
	if err := row.Scan(&p.ID, &p.NamespaceID, &p.Name, &p.Path, &p.FullPath, &p.Description, &p.Visibility, &p.DefaultBranch, &p.CreatorID, &p.CIConfigPath, &p.JobTokenAllowlist, &p.SeparatedCaches, &p.VariablesMinRole, &created, &updated); err != nil {
		return nil, mapErr(err)
	}
	p.CreatedAt, p.UpdatedAt = Time(created), Time(updated)
	return &p, nil
}

// CreateProject inserts a project; the creator becomes its owner member when
// the project lives in a group (in a personal namespace the owner is implied).
func (t *Tx) CreateProject(ctx context.Context, p *Project) error {
	// A deleted project's repository at this path may still be on its way
	// out; the path is taken until it is gone.
	if pending, err := t.projectPathPendingDeletion(ctx, p.FullPath); err != nil {
		return err
	} else if pending {
		return ErrConflict
	}
	now := Now()
	// New projects limit CI job-token access to themselves
	// (ci_job_token_scope_enabled), GitLab's default since 18.0.
	id, err := t.InsertID(ctx, `INSERT INTO projects (namespace_id, name, path, full_path, description, visibility, default_branch, creator_id, ci_config_path, job_token_allowlist, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, TRUE, ?, ?)`,
		p.NamespaceID, p.Name, p.Path, strings.ToLower(p.FullPath), p.Description, p.Visibility, p.DefaultBranch, p.CreatorID, p.CIConfigPath, now, now)
	if err != nil {
		return err
	}
	p.ID, p.CreatedAt, p.UpdatedAt, p.SeparatedCaches, p.JobTokenAllowlist, p.VariablesMinRole = id, Time(now), Time(now), true, true, "developer"
	return nil
}

// UpdateProject saves the editable fields of p.
func (t *Tx) UpdateProject(ctx context.Context, p *Project) error {
	now := Now()
	_, err := t.Exec(ctx, `UPDATE projects SET name = ?, path = ?, full_path = ?, description = ?, visibility = ?, default_branch = ?, ci_config_path = ?, job_token_allowlist = ?, ci_separated_caches = ?, ci_variables_min_role = ?, updated_at = ? WHERE id = ?`,
		p.Name, p.Path, strings.ToLower(p.FullPath), p.Description, p.Visibility, p.DefaultBranch, p.CIConfigPath, p.JobTokenAllowlist, p.SeparatedCaches, p.VariablesMinRole, now, p.ID)
	p.UpdatedAt = Time(now)
	return err
}

// SetDefaultBranchIfEmpty sets the default branch only when none is set; it
// reports whether it did.
func (t *Tx) SetDefaultBranchIfEmpty(ctx context.Context, projectID int64, branch string) (bool, error) {
	res, err := t.Exec(ctx, `UPDATE projects SET default_branch = ? WHERE id = ? AND default_branch = ''`, branch, projectID)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// DeleteProject removes a project with everything that belongs to it, as
// one transaction: its rows (pipelines, jobs, variables, triggers,
// schedules and memberships by cascade), its trigger delivery log, its
// project runners, and queues its files (every job's trace and artifacts,
// the repository, caches and build directories) for removal after commit.
func (t *Tx) DeleteProject(ctx context.Context, id int64) error {
	var path string
	if err := t.QueryRow(ctx, `SELECT full_path FROM projects WHERE id = ?`, id).Scan(&path); err != nil {
		return mapErr(err)
	}
	if err := t.recordJobFiles(ctx, `project_id = ?`, id); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `INSERT INTO file_deletions (project_path, created_at) VALUES (?, ?)`, path, Now()); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM runners WHERE runner_type = 'project_type' AND project_id = ?`, id); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM trigger_deliveries WHERE project_id = ?`, id); err != nil {
		return err
	}
	if err := t.deleteWebhookTriggersOf(ctx, id); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM projects WHERE id = ?`, id)
	return err
}

// ProjectByID loads a project.
func (s *Store) ProjectByID(ctx context.Context, id int64) (*Project, error) {
	return scanProject(s.queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
}

// ProjectByPath loads a project by "namespace/path" (case-insensitive).
func (s *Store) ProjectByPath(ctx context.Context, fullPath string) (*Project, error) {
	return scanProject(s.queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE full_path = ?`, strings.ToLower(fullPath)))
}

// ProjectFilter selects projects for ListProjects.
type ProjectFilter struct {
	UserID     int64 // viewer; 0 for anonymous
	Admin      bool
	Membership bool // only projects the viewer is a member of
	Search     string
	OrderBy    string // id, name, path, created_at, updated_at
	Sort       string // asc, desc
}

// ListProjects lists the projects the viewer may see.
func (s *Store) ListProjects(ctx context.Context, f ProjectFilter, page Page) ([]*Project, int, error) {
	var conds []string
	var args []any
	memberCond := `(id IN (SELECT project_id FROM project_members WHERE user_id = ?) OR namespace_id IN (SELECT namespace_id FROM group_members WHERE user_id = ?) OR namespace_id IN (SELECT id FROM namespaces WHERE kind = 'user' AND owner_id = ?))`
	switch {
	case f.Membership:
		conds = append(conds, memberCond)
		args = append(args, f.UserID, f.UserID, f.UserID)
	case f.Admin:
	case f.UserID != 0:
		conds = append(conds, `(visibility IN ('public', 'internal') OR `+memberCond+`)`)
		args = append(args, f.UserID, f.UserID, f.UserID)
	default:
		conds = append(conds, `visibility = 'public'`)
	}
	if f.Search != "" {
		conds = append(conds, `(LOWER(name) LIKE ? ESCAPE '\' OR full_path LIKE ? ESCAPE '\')`)
		p := "%" + likeEscape(strings.ToLower(f.Search)) + "%"
		args = append(args, p, p)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM projects`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	order := map[string]string{"id": "id", "name": "name", "path": "path", "created_at": "created_at", "updated_at": "updated_at", "last_activity_at": "updated_at"}[f.OrderBy]
	if order == "" {
		order = "created_at"
	}
	dir := "DESC"
	if f.Sort == "asc" {
		dir = "ASC"
	}
	rows, err := s.query(ctx, `SELECT `+projectCols+` FROM projects`+where+` ORDER BY `+order+` `+dir+`, id `+dir+` LIMIT ? OFFSET ?`, append(args, page.Limit(), page.Offset())...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, p)
	}
	return out, total, rows.Err()
}

// AccessLevel computes a user's effective access to a project: the highest
// of direct membership, group membership, and ownership of the personal
// namespace. Admins get Owner.
func (s *Store) AccessLevel(ctx context.Context, p *Project, u *User) (int, error) {
	if u == nil {
		return NoAccess, nil
	}
	if u.IsAdmin {
		return Owner, nil
	}
	var level sql.NullInt64
	err := s.queryRow(ctx, `SELECT MAX(l) FROM (
		SELECT access_level AS l FROM project_members WHERE project_id = ? AND user_id = ?
		UNION ALL SELECT access_level FROM group_members WHERE namespace_id = ? AND user_id = ?
		UNION ALL SELECT 50 FROM namespaces WHERE id = ? AND kind = 'user' AND owner_id = ?) x`,
		p.ID, u.ID, p.NamespaceID, u.ID, p.NamespaceID, u.ID).Scan(&level)
	if err != nil {
		return 0, err
	}
	return int(level.Int64), nil
}

// GroupAccessLevel returns a user's access level in a group.
func (s *Store) GroupAccessLevel(ctx context.Context, nsID int64, u *User) (int, error) {
	if u == nil {
		return NoAccess, nil
	}
	if u.IsAdmin {
		return Owner, nil
	}
	var level int
	err := s.queryRow(ctx, `SELECT access_level FROM group_members WHERE namespace_id = ? AND user_id = ?`, nsID, u.ID).Scan(&level)
	if err == sql.ErrNoRows {
		return NoAccess, nil
	}
	return level, err
}
