package store

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// WithClaim runs fn only if no other server sharing this database is
// running fn under the same name right now, and reports whether it ran.
// On PostgreSQL the claim is a session advisory lock keyed by the schema
// and name, held on one dedicated connection for fn's duration: it is
// released when fn returns, or by PostgreSQL when a crashed server's
// connection goes away. SQLite has one server per database file, so fn
// always runs.
func (s *Store) WithClaim(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	if s.Dialect != Postgres {
		return true, fn(ctx)
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	const key = `hashtextextended(COALESCE(current_schema(), '') || ':kiln:' || $1, 0)`
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+key+`)`, name).Scan(&got); err != nil {
		return false, fmt.Errorf("claiming %s: %w", name, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		// A fresh context: fn's may be cancelled (shutdown), and a lock left
		// on a pooled connection would block every other server.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`, name); err != nil {
			// Returning ErrBadConn from Raw makes database/sql discard
			// the connection, and the lock with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return true, fn(ctx)
}
