package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statement cache; queries built from many
// filter combinations beyond it are simply not cached.
const maxCachedStmts = 512

// stmtCache keeps prepared statements per query text. SQLite spends a large
// share of a short transaction's time parsing SQL (a quarter of the trigger
// hot path in profiles), and the pure-Go driver caches nothing itself.
type stmtCache struct {
	db preparer
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// preparer is a *sql.DB or, for SQLite's single writer, the *sql.Conn that
// the batcher holds for good (preparing through the pool would wait forever
// for the connection an open transaction is using).
type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

func newStmtCache(db preparer) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[q]
	full := len(c.m) >= maxCachedStmts
	c.mu.Unlock()
	if ok {
		return st
	}
	if full {
		return nil // run unprepared rather than keep a statement nobody closes
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the caller runs the query unprepared and reports the error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok {
		st.Close()
		return old
	}
	if len(c.m) >= maxCachedStmts {
		// Full: run this query unprepared rather than keep a statement
		// nobody will close.
		st.Close()
		return nil
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
}

// dbQ runs queries on a pool through the statement cache.
type dbQ struct {
	db    *sql.DB
	cache *stmtCache
}

func (q dbQ) QueryContext(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	if st := q.cache.get(ctx, s); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, s, args...)
}

func (q dbQ) QueryRowContext(ctx context.Context, s string, args ...any) *sql.Row {
	if st := q.cache.get(ctx, s); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, s, args...)
}

func (q dbQ) ExecContext(ctx context.Context, s string, args ...any) (sql.Result, error) {
	if st := q.cache.get(ctx, s); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.db.ExecContext(ctx, s, args...)
}

// connQ runs queries on the batcher's own connection through statements
// prepared on it. The batcher issues BEGIN/COMMIT itself on that connection
// because database/sql's Tx re-prepares connection-bound statements on every
// use, which is exactly the parsing cost this cache exists to avoid.
type connQ struct {
	conn  *sql.Conn
	cache *stmtCache
	// rows tracks result sets handed out, closed when the callback's
	// savepoint ends: a cached statement whose rows stay open is unusable.
	rows *[]*sql.Rows
}

// Statements run without the caller's cancellation: an interrupted SQLite
// write rolls back the whole shared transaction (see batcher).

func (q connQ) QueryContext(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	var rows *sql.Rows
	var err error
	if st := q.cache.get(ctx, s); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.conn.QueryContext(ctx, s, args...)
	}
	if err == nil && q.rows != nil {
		*q.rows = append(*q.rows, rows)
	}
	return rows, err
}

func (q connQ) QueryRowContext(ctx context.Context, s string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if st := q.cache.get(ctx, s); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.conn.QueryRowContext(ctx, s, args...)
}

func (q connQ) ExecContext(ctx context.Context, s string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if st := q.cache.get(ctx, s); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.conn.ExecContext(ctx, s, args...)
}

func (q connQ) closeRows() {
	if q.rows == nil {
		return
	}
	for _, r := range *q.rows {
		r.Close()
	}
	*q.rows = (*q.rows)[:0]
}
