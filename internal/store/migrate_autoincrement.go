package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// idColumn matches the id column of a table created before SQLite ids were
// AUTOINCREMENT ("id INTEGER PRIMARY KEY" not followed by AUTOINCREMENT).
var idColumn = regexp.MustCompile(`(?i)\bid\s+INTEGER\s+PRIMARY\s+KEY\b(\s+AUTOINCREMENT\b)?`)

// idReferences names, per table, the columns of other tables that hold its
// ids. When a table is converted, its sequence starts above the largest id
// still referenced anywhere, so that a row deleted before the upgrade (whose
// id survives in a delivery log, a link or a job's upstream) is not reused
// once either. Columns absent from a database are skipped.
func idReferences(table string) []string {
	return map[string][]string{
		"users": {"personal_access_tokens.user_id", "group_members.user_id", "project_members.user_id", "namespaces.owner_id",
			"projects.creator_id", "pipelines.user_id", "jobs.user_id", "runners.creator_id", "triggers.owner_id",
			"pipeline_schedules.owner_id", "pipeline_schedule_runs.user_id", "sessions.user_id"},
		"namespaces":         {"projects.namespace_id", "group_members.namespace_id", "runners.group_id"},
		"projects":           {"pipelines.project_id", "jobs.project_id", "runners.project_id", "triggers.project_id", "trigger_deliveries.project_id", "pipeline_schedules.project_id", "pipeline_schedule_runs.project_id", "ci_variables.project_id", "protected_refs.project_id"},
		"pipelines":          {"jobs.pipeline_id", "pipelines.upstream_pipeline_id", "jobs.downstream_pipeline_id", "trigger_deliveries.pipeline_id", "pipeline_schedules.last_pipeline_id", "pipeline_schedule_runs.pipeline_id"},
		"jobs":               {"pipelines.upstream_job_id"},
		"runners":            {"jobs.runner_id"},
		"triggers":           {"pipelines.trigger_id", "trigger_deliveries.trigger_id"},
		"pipeline_schedules": {"pipelines.schedule_id", "pipeline_schedule_runs.schedule_id"},
	}[table]
}

// migrateSQLiteAutoincrement rebuilds every SQLite table whose id is a plain
// INTEGER PRIMARY KEY as AUTOINCREMENT, so that ids are never handed out
// twice. SQLite cannot ALTER a column into AUTOINCREMENT; this follows its
// documented procedure (lang_altertable.html, "other kinds of table schema
// changes"): with foreign keys off, create the new table, copy the rows,
// drop the old one, rename, recreate its indexes, check foreign keys, all in
// one transaction. Rows keep their ids, so references stay valid.
// PostgreSQL ids are sequences, which never go back: nothing to do there.
func migrateSQLiteAutoincrement(ctx context.Context, s *Store) error {
	if s.Dialect != SQLite {
		return nil
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// PRAGMA foreign_keys is a no-op inside a transaction: set it first.
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := rebuildAutoincrement(ctx, tx); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return err
	}
	bad := rows.Next()
	rows.Close()
	if bad {
		return fmt.Errorf("foreign key check failed after rebuilding tables")
	}
	return tx.Commit()
}

type sqliteTable struct {
	name, sql string
	indexes   []string
}

func rebuildAutoincrement(ctx context.Context, tx *sql.Tx) error {
	var tables []sqliteTable
	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var t sqliteTable
		if err := rows.Scan(&t.name, &t.sql); err != nil {
			rows.Close()
			return err
		}
		m := idColumn.FindStringSubmatchIndex(t.sql)
		if m == nil || m[2] >= 0 { // no integer id, or already AUTOINCREMENT
			continue
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range tables {
		t := &tables[i]
		irows, err := tx.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, t.name)
		if err != nil {
			return err
		}
		for irows.Next() {
			var q string
			if err := irows.Scan(&q); err != nil {
				irows.Close()
				return err
			}
			t.indexes = append(t.indexes, q)
		}
		irows.Close()
	}
	for _, t := range tables {
		tmp := "kiln_rebuild_" + t.name
		m := idColumn.FindStringIndex(t.sql)
		body := t.sql[:m[1]] + " AUTOINCREMENT" + t.sql[m[1]:]
		// Replace the table name in "CREATE TABLE <name> (".
		open := strings.Index(body, "(")
		if open < 0 {
			return fmt.Errorf("table %s: unexpected schema %q", t.name, t.sql)
		}
		create := "CREATE TABLE " + quoteIdent(tmp) + " " + body[open:]
		stmts := []string{
			create,
			`INSERT INTO ` + quoteIdent(tmp) + ` SELECT * FROM ` + quoteIdent(t.name),
			`DROP TABLE ` + quoteIdent(t.name),
			`ALTER TABLE ` + quoteIdent(tmp) + ` RENAME TO ` + quoteIdent(t.name),
		}
		stmts = append(stmts, t.indexes...)
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("rebuilding %s: %w\n%s", t.name, err, q)
			}
		}
		seq, err := highestReferencedID(ctx, tx, t.name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sqlite_sequence WHERE name = ?`, t.name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, t.name, seq); err != nil {
			return err
		}
	}
	return nil
}

// highestReferencedID is the largest id of table found in the table itself
// or in any column known to reference it.
func highestReferencedID(ctx context.Context, tx *sql.Tx, table string) (int64, error) {
	var hi int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM `+quoteIdent(table)).Scan(&hi); err != nil {
		return 0, err
	}
	for _, ref := range idReferences(table) {
		tbl, col, _ := strings.Cut(ref, ".")
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, tbl, col).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			continue
		}
		var v sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(`+quoteIdent(col)+`) FROM `+quoteIdent(tbl)).Scan(&v); err != nil {
			return 0, err
		}
		if v.Valid && v.Int64 > hi {
			hi = v.Int64
		}
	}
	return hi, nil
}
