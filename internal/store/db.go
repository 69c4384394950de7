// Package store persists Kiln's state in SQLite (the default) or PostgreSQL
// through one SQL code path and one set of embedded migrations.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the pure-Go "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Dialect names the SQL database behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique constraint would be violated.
var ErrConflict = errors.New("already exists")

// Store is the database handle. Reads go through a pool; writes go through
// Write, which on SQLite batches concurrent transactions into one commit.
type Store struct {
	Dialect Dialect
	read    *sql.DB
	write   *sql.DB
	log     *slog.Logger
	batcher *batcher
	// schema is set for PostgreSQL connections confined to one schema (tests).
	schema string
	// rq runs read queries; on SQLite through prepared statements (rcache),
	// as do write transactions (wcache). PostgreSQL's driver caches its own.
	rq             Querier
	rcache, wcache *stmtCache
	// jobFinished runs after each commit that finished a job (OnJobFinished).
	jobFinished func()
}

// OnJobFinished sets fn to run after every commit that moved a job to a
// final status, whichever path did (runner report, cancel, reaper): the
// server archives the job's log then. Set it before the store is used.
func (s *Store) OnJobFinished(fn func()) { s.jobFinished = fn }

// Options tune Open.
type Options struct {
	// Schema confines a PostgreSQL store to one schema, created if missing.
	// Tests use it so that concurrent runs never collide.
	Schema string
}

// Open connects to dsn: a postgres:// or postgresql:// URL selects
// PostgreSQL, anything else is a SQLite file path. Migrations run before
// Open returns.
func Open(ctx context.Context, dsn string, log *slog.Logger, opts Options) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log, schema: opts.Schema}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.Dialect = Postgres
		err = s.openPostgres(ctx, dsn)
	} else {
		s.Dialect = SQLite
		err = s.openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.batcher = newBatcher(s)
	return s, nil
}

func (s *Store) openSQLite(ctx context.Context, path string) error {
	// synchronous=FULL makes every commit durable in WAL mode: an answered
	// request survives kill -9 and power loss. Group commit (batcher) is what
	// keeps that affordable under load.
	pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(ON)")
	if err != nil {
		w.Close()
		return err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s.read, s.write = r, w
	s.rcache = newStmtCache(r)
	s.rq = dbQ{db: r, cache: s.rcache}
	return nil
}

func (s *Store) openPostgres(ctx context.Context, dsn string) error {
	if s.schema != "" {
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			return err
		}
		_, err = admin.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(s.schema))
		admin.Close()
		if err != nil {
			return fmt.Errorf("create schema %s: %w", s.schema, err)
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "search_path=" + s.schema
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("connect to postgres: %w", err)
	}
	s.read, s.write = db, db
	s.rq = db
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// DropSchema removes the store's private PostgreSQL schema; tests call it on cleanup.
func (s *Store) DropSchema(ctx context.Context) error {
	if s.Dialect != Postgres || s.schema == "" {
		return nil
	}
	_, err := s.write.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+quoteIdent(s.schema)+` CASCADE`)
	return err
}

// Close stops the batcher and closes the connections.
func (s *Store) Close() error {
	if s.batcher != nil {
		s.batcher.stop()
	}
	if s.rcache != nil {
		s.rcache.close()
	}
	err := s.write.Close()
	if s.read != s.write {
		if e := s.read.Close(); err == nil {
			err = e
		}
	}
	return err
}

// DB returns the read pool, for packages (like the PostgreSQL notifier) that need the raw handle.
func (s *Store) DB() *sql.DB { return s.read }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	steps, err := migrationSteps()
	if err != nil {
		return err
	}
	for _, step := range steps {
		version := step.version
		var n int
		if err := s.write.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if step.run != nil {
			if err := step.run(ctx, s); err != nil {
				return fmt.Errorf("migration %s: %w", version, err)
			}
			if _, err := s.write.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, Now()); err != nil {
				return err
			}
			s.log.Info("applied migration", "version", version)
			continue
		}
		body, _ := migrationFiles.ReadFile(step.file)
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(s.dialectSQL(string(body))) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %s: %w\n%s", version, err, stmt)
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, Now()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", version, err)
		}
		s.log.Info("applied migration", "version", version)
	}
	return nil
}

func (s *Store) dialectSQL(q string) string {
	if s.Dialect == Postgres {
		return strings.NewReplacer("{{id}}", "BIGSERIAL PRIMARY KEY", "{{bool}}", "BOOLEAN", "{{blob}}", "BYTEA", "{{unlogged}}", "UNLOGGED").Replace(q)
	}
	// AUTOINCREMENT: without it SQLite hands the id of a deleted newest row
	// to the next insert, and old references (delivery log rows, links,
	// trace files) would point at the new row. PostgreSQL's sequences never
	// go back.
	return strings.NewReplacer("{{id}}", sqliteID, "{{bool}}", "BOOLEAN", "{{blob}}", "BLOB", "{{unlogged}} ", "").Replace(q)
}

// sqliteID is what {{id}} becomes on SQLite.
const sqliteID = "INTEGER PRIMARY KEY AUTOINCREMENT"

// migrationStep is one schema change: an embedded .sql file, or a Go
// function for what SQL alone cannot do portably.
type migrationStep struct {
	version string
	file    string
	run     func(ctx context.Context, s *Store) error
}

// goMigrations are the migrations written in Go, by version. They sort
// among the .sql files by version like any other.
func goMigrations() map[string]func(ctx context.Context, s *Store) error {
	return map[string]func(ctx context.Context, s *Store) error{
		"006_sqlite_autoincrement": migrateSQLiteAutoincrement,
	}
}

// migrationSteps lists every migration in version order.
func migrationSteps() ([]migrationStep, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var steps []migrationStep
	for _, name := range names {
		steps = append(steps, migrationStep{version: strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql"), file: name})
	}
	for v, fn := range goMigrations() {
		steps = append(steps, migrationStep{version: v, run: fn})
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].version < steps[j].version })
	return steps, nil
}

func splitStatements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(t, ";") {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// rebind turns ? placeholders into $n for PostgreSQL. Queries in this
// package never contain a literal '?' inside strings.
func (s *Store) rebind(q string) string {
	if s.Dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Now is the store's clock in unix microseconds.
func Now() int64 { return time.Now().UnixMicro() }

// Time converts a stored unix-microsecond value.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// TimePtr converts a nullable stored time.
func TimePtr(us sql.NullInt64) *time.Time {
	if !us.Valid {
		return nil
	}
	t := Time(us.Int64)
	return &t
}

// Querier is what read helpers need: the read pool or a write transaction.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Tx is a write transaction handed to Write callbacks. Its methods take
// queries with ? placeholders.
type Tx struct {
	s  *Store
	tx Querier
	// after holds callbacks to run once the enclosing commit is durable.
	after []func()
}

func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(ctx, t.s.rebind(q), args...)
	return res, mapErr(err)
}

func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.rebind(q), args...)
}

// InsertID runs an INSERT ... RETURNING id.
func (t *Tx) InsertID(ctx context.Context, q string, args ...any) (int64, error) {
	var id int64
	err := t.tx.QueryRowContext(ctx, t.s.rebind(q+" RETURNING id"), args...).Scan(&id)
	return id, mapErr(err)
}

// AfterCommit registers fn to run after the transaction has committed
// durably (used for wake-ups: a runner must never see a job before it exists).
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// Store returns the store, so that write helpers can reuse read helpers' SQL.
func (t *Tx) Store() *Store { return t.s }

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.rq.QueryRowContext(ctx, s.rebind(q), args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.rq.QueryContext(ctx, s.rebind(q), args...)
}

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	msg := err.Error()
	if strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "duplicate key value") || strings.Contains(msg, "SQLSTATE 23505") {
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return err
}
