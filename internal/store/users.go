package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// User is a person (or the root administrator) who signs in and owns tokens.
type User struct {
	ID           int64
	Username     string
	Name         string
	Email        string
	IsAdmin      bool
	State        string
	PasswordHash string
	CreatedAt    time.Time
}

const userCols = `id, username, name, email, is_admin, state, password_hash, created_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Name, &u.Email, &u.IsAdmin, &u.State, &u.PasswordHash, &created); err != nil {
		return nil, mapErr(err)
	}
	u.CreatedAt = Time(created)
	return &u, nil
}

// CreateUser inserts a user and its personal namespace.
func (t *Tx) CreateUser(ctx context.Context, u *User) error {
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO users (username, name, email, is_admin, state, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.Username, u.Name, u.Email, u.IsAdmin, "active", u.PasswordHash, now)
	if err != nil {
		return err
	}
	u.ID, u.State, u.CreatedAt = id, "active", Time(now)
	_, err = t.InsertID(ctx, `INSERT INTO namespaces (name, path, full_path, kind, owner_id, visibility, created_at) VALUES (?, ?, ?, 'user', ?, 'public', ?)`,
		u.Username, u.Username, strings.ToLower(u.Username), id, now)
	return err
}

// SetUserPassword replaces a user's password hash.
func (t *Tx) SetUserPassword(ctx context.Context, userID int64, hash string) error {
	_, err := t.Exec(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
	return err
}

// UserByID loads one user.
func (s *Store) UserByID(ctx context.Context, id int64) (*User, error) {
	return scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
}

// UserByUsername loads one user by name (case-insensitive, as GitLab).
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	return scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE LOWER(username) = ?`, strings.ToLower(username)))
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// ListUsers returns users ordered by id, filtered by a username/name search.
func (s *Store) ListUsers(ctx context.Context, search string, page Page) ([]*User, int, error) {
	where, args := "", []any{}
	if search != "" {
		where = ` WHERE LOWER(username) LIKE ? ESCAPE '\' OR LOWER(name) LIKE ? ESCAPE '\'`
		p := "%" + likeEscape(strings.ToLower(search)) + "%"
		args = append(args, p, p)
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users`+where+` ORDER BY id LIMIT ? OFFSET ?`, append(args, page.Limit(), page.Offset())...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}

// Page is a 1-based page request.
type Page struct{ Number, PerPage int }

func (p Page) Limit() int  { return p.PerPage }
func (p Page) Offset() int { return (p.Number - 1) * p.PerPage }

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Token is a personal access token row. The secret itself is never stored.
type Token struct {
	ID         int64
	UserID     int64
	Name       string
	Scopes     []string
	ExpiresAt  *time.Time
	Revoked    bool
	LastUsedAt *time.Time
	CreatedAt  time.Time
}

// Active reports whether the token may authenticate at t.
func (k *Token) Active(t time.Time) bool {
	return !k.Revoked && (k.ExpiresAt == nil || t.Before(*k.ExpiresAt))
}

// HasScope reports whether the token carries scope.
func (k *Token) HasScope(scope string) bool {
	for _, s := range k.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

const tokenCols = `id, user_id, name, scopes, expires_at, revoked, last_used_at, created_at`

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var k Token
	var scopes string
	var exp, used sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.UserID, &k.Name, &scopes, &exp, &k.Revoked, &used, &created); err != nil {
		return nil, mapErr(err)
	}
	k.Scopes = strings.Split(scopes, ",")
	k.ExpiresAt, k.LastUsedAt, k.CreatedAt = TimePtr(exp), TimePtr(used), Time(created)
	return &k, nil
}

// CreateToken stores a token by the hash of its secret.
func (t *Tx) CreateToken(ctx context.Context, k *Token, hash string) error {
	now := Now()
	var exp sql.NullInt64
	if k.ExpiresAt != nil {
		exp = sql.NullInt64{Int64: k.ExpiresAt.UnixMicro(), Valid: true}
	}
	id, err := t.InsertID(ctx, `INSERT INTO personal_access_tokens (user_id, name, token_hash, scopes, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.UserID, k.Name, hash, strings.Join(k.Scopes, ","), exp, now)
	if err != nil {
		return err
	}
	k.ID, k.CreatedAt = id, Time(now)
	return nil
}

// TokenByHash finds a token by the hash of its secret.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*Token, error) {
	return scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM personal_access_tokens WHERE token_hash = ?`, hash))
}

// TokenByID loads one token.
func (s *Store) TokenByID(ctx context.Context, id int64) (*Token, error) {
	return scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM personal_access_tokens WHERE id = ?`, id))
}

// TokensOfUser lists a user's tokens.
func (s *Store) TokensOfUser(ctx context.Context, userID int64) ([]*Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM personal_access_tokens WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Token
	for rows.Next() {
		k, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeToken marks a token revoked; it reports ErrNotFound for unknown ids.
func (t *Tx) RevokeToken(ctx context.Context, id int64) error {
	res, err := t.Exec(ctx, `UPDATE personal_access_tokens SET revoked = TRUE WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchToken records a token's last use. Called at most once a minute per
// token by the caller, so it is cheap enough to do outside the hot path.
func (t *Tx) TouchToken(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `UPDATE personal_access_tokens SET last_used_at = ? WHERE id = ?`, Now(), id)
	return err
}

// Setting reads an instance setting; ok is false when unset.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	return v, err == nil, err
}

// PutSetting writes an instance setting.
func (t *Tx) PutSetting(ctx context.Context, key, value string) error {
	_, err := t.Exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// AddSetting writes an instance setting unless it is already set; the
// value already there wins (two replicas starting at once agree on one).
func (t *Tx) AddSetting(ctx context.Context, key, value string) error {
	_, err := t.Exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value)
	return err
}

// SealedSamples returns one encrypted value from each table that keeps
// them (CI/CD variables, pipeline and schedule variables, webhook trigger
// secrets), for checking a secrets key against data sealed before the
// key check existed.
func (s *Store) SealedSamples(ctx context.Context) ([]string, error) {
	var out []string
	for _, q := range []string{
		`SELECT value_enc FROM ci_variables ORDER BY id LIMIT 1`,
		`SELECT value_enc FROM pipeline_variables ORDER BY pipeline_id LIMIT 1`,
		`SELECT value_enc FROM pipeline_schedule_variables ORDER BY schedule_id LIMIT 1`,
		`SELECT secret_enc FROM webhook_triggers ORDER BY id LIMIT 1`,
	} {
		var v string
		switch err := s.queryRow(ctx, q).Scan(&v); {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, err
		case v != "":
			out = append(out, v)
		}
	}
	return out, nil
}

// UpdateUser writes a user's name, email and admin flag.
func (t *Tx) UpdateUser(ctx context.Context, u *User) error {
	res, err := t.Exec(ctx, `UPDATE users SET name = ?, email = ?, is_admin = ? WHERE id = ?`, u.Name, u.Email, u.IsAdmin, u.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
