package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMeasureAutoincrementMigration times migration 006 on a database of
// the old schema with 20,000 pipelines and 100,000 jobs (docs/operations.md
// quotes it). Run with KILN_MEASURE=1:
//
//	KILN_MEASURE=1 go test -count=1 -run TestMeasureAutoincrementMigration -v ./internal/store
func TestMeasureAutoincrementMigration(t *testing.T) {
	if os.Getenv("KILN_MEASURE") == "" {
		t.Skip("set KILN_MEASURE=1 to measure")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	old.SetMaxOpenConns(1)
	exec := func(db interface {
		Exec(string, ...any) (sql.Result, error)
	}, q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	exec(old, `CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
	steps, err := migrationSteps()
	if err != nil {
		t.Fatal(err)
	}
	oldDialect := strings.NewReplacer("{{id}}", "INTEGER PRIMARY KEY", "{{bool}}", "BOOLEAN", "{{blob}}", "BLOB")
	for _, st := range steps {
		if st.version >= "006_sqlite_autoincrement" {
			break
		}
		body, _ := migrationFiles.ReadFile(st.file)
		for _, q := range splitStatements(oldDialect.Replace(string(body))) {
			exec(old, q)
		}
		exec(old, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, st.version)
	}
	exec(old, `INSERT INTO users (id, username, created_at) VALUES (1, 'root', 0)`)
	exec(old, `INSERT INTO namespaces (id, name, path, full_path, kind, owner_id, created_at) VALUES (1, 'g', 'g', 'g', 'group', 1, 0)`)
	exec(old, `INSERT INTO projects (id, namespace_id, name, path, full_path, creator_id, created_at, updated_at) VALUES (1, 1, 'p', 'p', 'g/p', 1, 0, 0)`)
	tx, err := old.Begin()
	if err != nil {
		t.Fatal(err)
	}
	const pipelines, perPipeline = 20000, 5
	spec := strings.Repeat("x", 800) // about a real job's frozen spec
	for i := 1; i <= pipelines; i++ {
		exec(tx, `INSERT INTO pipelines (id, project_id, iid, ref, sha, source, status, created_at, updated_at) VALUES (?, 1, ?, 'main', 'abc', 'push', 'success', 0, 0)`, i, i)
		for k := range perPipeline {
			exec(tx, `INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, status, spec, created_at) VALUES (?, 1, ?, 'test', 0, 'success', ?, 0)`, i, fmt.Sprint("j", k), spec)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	exec(old, `PRAGMA wal_checkpoint(TRUNCATE)`)
	old.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Open(ctx, path, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	s.Close()
	t.Logf("%d pipelines, %d jobs, %.0f MiB database: opening with the migrations took %s", pipelines, pipelines*perPipeline, float64(fi.Size())/(1<<20), took.Round(10*time.Millisecond))
}
