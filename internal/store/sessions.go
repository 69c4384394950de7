package store

import (
	"context"
	"time"
)

// Session is a signed-in browser. The session id itself lives only in the
// user's cookie; the table keys rows by its hash, so a leaked database does
// not let anyone take over a session.
type Session struct {
	UserID    int64
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession stores a session under the hash of its id.
func (t *Tx) CreateSession(ctx context.Context, idHash string, userID int64, csrf string, expires time.Time) error {
	_, err := t.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		idHash, userID, csrf, Now(), expires.UnixMicro())
	return err
}

// SessionByHash loads a session that has not expired yet.
func (s *Store) SessionByHash(ctx context.Context, idHash string) (*Session, error) {
	var ss Session
	var created, expires int64
	err := s.queryRow(ctx, `SELECT user_id, csrf, created_at, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?`, idHash, Now()).
		Scan(&ss.UserID, &ss.CSRF, &created, &expires)
	if err != nil {
		return nil, mapErr(err)
	}
	ss.CreatedAt, ss.ExpiresAt = Time(created), Time(expires)
	return &ss, nil
}

// DeleteSession removes one session (sign out).
func (t *Tx) DeleteSession(ctx context.Context, idHash string) error {
	_, err := t.Exec(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
	return err
}

// DeleteExpiredSessions removes sessions past their expiry, so the table
// does not grow with every sign-in ever made.
func (t *Tx) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := t.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now.UnixMicro())
	return err
}

// DeleteUserSessions signs a user out everywhere except the session whose
// id hash is keep ("" signs out everywhere), e.g. after a password change.
func (t *Tx) DeleteUserSessions(ctx context.Context, userID int64, keep string) error {
	_, err := t.Exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?`, userID, keep)
	return err
}
