package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestIDsNeverReused deletes the newest row of each id-bearing table that can
// be deleted and checks that the next insert gets a new id, on both
// databases (issue #12: SQLite used to hand the deleted id out again).
func TestIDsNeverReused(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := &User{Username: "alice"}
		g := &Namespace{Name: "G", Path: "g", FullPath: "g", Visibility: "private"}
		mustWrite(t, s, func(tx *Tx) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return tx.CreateGroup(ctx, g, u.ID)
		})
		n := 0
		newProject := func() *Project {
			n++
			p := &Project{NamespaceID: g.ID, Name: "p", Path: fmt.Sprintf("p%d", n), FullPath: fmt.Sprintf("g/p%d", n), Visibility: "private", CreatorID: u.ID}
			mustWrite(t, s, func(tx *Tx) error { return tx.CreateProject(ctx, p) })
			return p
		}
		keep := newProject()
		newPipeline := func() (*Pipeline, *Job) {
			pl := &Pipeline{ProjectID: keep.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "push", Status: "pending"}
			j := &Job{ProjectID: keep.ID, Name: "build", Stage: "test", Status: "pending", Spec: "{}"}
			mustWrite(t, s, func(tx *Tx) error {
				if err := tx.InsertPipeline(ctx, pl); err != nil {
					return err
				}
				j.PipelineID = pl.ID
				return tx.InsertJob(ctx, j)
			})
			return pl, j
		}
		newTrigger := func() *Trigger {
			tr := &Trigger{ProjectID: keep.ID, OwnerID: u.ID, TokenHash: fmt.Sprintf("h%d", n), ShortToken: "x"}
			n++
			mustWrite(t, s, func(tx *Tx) error { return tx.CreateTrigger(ctx, tr) })
			return tr
		}
		newRunner := func() *Runner {
			r := &Runner{TokenHash: fmt.Sprintf("r%d", n), RunnerType: "project_type", ProjectID: keep.ID, AccessLevel: "not_protected"}
			n++
			mustWrite(t, s, func(tx *Tx) error { return tx.CreateRunner(ctx, r) })
			return r
		}

		p1 := newProject()
		mustWrite(t, s, func(tx *Tx) error { return tx.DeleteProject(ctx, p1.ID) })
		if p2 := newProject(); p2.ID <= p1.ID {
			t.Errorf("project id %d reused after deleting %d", p2.ID, p1.ID)
		}
		pl1, j1 := newPipeline()
		mustWrite(t, s, func(tx *Tx) error { return tx.DeletePipeline(ctx, pl1.ID) })
		if pl2, j2 := newPipeline(); pl2.ID <= pl1.ID || j2.ID <= j1.ID {
			t.Errorf("pipeline/job ids %d/%d reused after deleting %d/%d", pl2.ID, j2.ID, pl1.ID, j1.ID)
		}
		tr1 := newTrigger()
		mustWrite(t, s, func(tx *Tx) error { return tx.DeleteTrigger(ctx, tr1.ID) })
		if tr2 := newTrigger(); tr2.ID <= tr1.ID {
			t.Errorf("trigger id %d reused after deleting %d", tr2.ID, tr1.ID)
		}
		r1 := newRunner()
		mustWrite(t, s, func(tx *Tx) error { return tx.DeleteRunner(ctx, r1.ID) })
		if r2 := newRunner(); r2.ID <= r1.ID {
			t.Errorf("runner id %d reused after deleting %d", r2.ID, r1.ID)
		}
	})
}

func mustWrite(t *testing.T, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteAutoincrementMigration builds a database the way Kiln did before
// ids were AUTOINCREMENT (the migrations that precede the conversion, with
// {{id}} as a plain INTEGER PRIMARY KEY), fills it, deletes the newest rows,
// and opens it with the current code: every row, index and foreign key must
// survive, and no id handed out before the upgrade comes back.
func TestSQLiteAutoincrementMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	old.SetMaxOpenConns(1)
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	mustExec(`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
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
			mustExec(q)
		}
		mustExec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, st.version)
	}
	// Old data: a user, a group, two projects, three pipelines with jobs, a
	// trigger, a runner, a delivery and a schedule run that name pipeline 3.
	mustExec(`INSERT INTO users (id, username, created_at) VALUES (1, 'root', 0)`)
	mustExec(`INSERT INTO namespaces (id, name, path, full_path, kind, owner_id, created_at) VALUES (1, 'g', 'g', 'g', 'group', 1, 0)`)
	mustExec(`INSERT INTO group_members (namespace_id, user_id, access_level, created_at) VALUES (1, 1, 50, 0)`)
	for _, id := range []int{1, 2} {
		mustExec(`INSERT INTO projects (id, namespace_id, name, path, full_path, creator_id, created_at, updated_at) VALUES (?, 1, 'p', ?, ?, 1, 0, 0)`, id, fmt.Sprint("p", id), fmt.Sprint("g/p", id))
	}
	for _, id := range []int{1, 2, 3} {
		mustExec(`INSERT INTO pipelines (id, project_id, iid, ref, sha, source, status, created_at, updated_at) VALUES (?, 1, ?, 'main', 'abc', 'push', 'success', 0, 0)`, id, id)
		mustExec(`INSERT INTO jobs (id, pipeline_id, project_id, name, stage, stage_idx, status, spec, created_at) VALUES (?, ?, 1, 'j', 'test', 0, 'success', '{}', 0)`, id, id)
	}
	mustExec(`INSERT INTO triggers (id, project_id, owner_id, token_hash, short_token, created_at, updated_at) VALUES (1, 1, 1, 'th', 'st', 0, 0)`)
	mustExec(`UPDATE projects SET pipeline_iid = 3 WHERE id = 1`)
	mustExec(`INSERT INTO runners (id, token_hash, runner_type, project_id, created_at) VALUES (1, 'rh', 'project_type', 1, 0)`)
	// A project runner left behind by project 2, deleted below.
	mustExec(`INSERT INTO runners (id, token_hash, runner_type, project_id, created_at) VALUES (2, 'rh2', 'project_type', 2, 0)`)
	mustExec(`INSERT INTO trigger_deliveries (id, project_id, trigger_id, status_code, result, pipeline_id, created_at) VALUES (1, 1, 1, 201, 'created', 3, 0)`)
	mustExec(`INSERT INTO pipeline_variables (pipeline_id, key, value_enc) VALUES (2, 'K', 'v')`)
	// The old schema's flaw, before the upgrade: delete the newest pipeline
	// and project; the delivery still names pipeline 3.
	mustExec(`DELETE FROM jobs WHERE pipeline_id = 3`)
	mustExec(`DELETE FROM pipelines WHERE id = 3`)
	mustExec(`DELETE FROM projects WHERE id = 2`)
	indexes := func(db interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}) []string {
		rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			out = append(out, n)
		}
		return out
	}
	before := indexes(old)
	old.Close()

	s, err := Open(ctx, path, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Every index survives (later migrations may add more).
	after := map[string]bool{}
	for _, ix := range indexes(s.read) {
		after[ix] = true
	}
	for _, ix := range before {
		if !after[ix] {
			t.Errorf("index %s lost in the migration", ix)
		}
	}
	var plain []string
	rows, err := s.read.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE '%INTEGER PRIMARY KEY%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, q string
		rows.Scan(&name, &q)
		if !strings.Contains(q, "AUTOINCREMENT") {
			plain = append(plain, name)
		}
	}
	rows.Close()
	sort.Strings(plain)
	if len(plain) > 0 {
		t.Errorf("tables still without AUTOINCREMENT: %v", plain)
	}
	// Data survived.
	count := func(q string) int {
		var n int
		if err := s.read.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for q, want := range map[string]int{
		`SELECT COUNT(*) FROM pipelines`: 2, `SELECT COUNT(*) FROM jobs`: 2, `SELECT COUNT(*) FROM projects`: 1,
		`SELECT COUNT(*) FROM triggers`: 1, `SELECT COUNT(*) FROM runners`: 1, `SELECT COUNT(*) FROM runners WHERE id = 2`: 0, `SELECT COUNT(*) FROM trigger_deliveries WHERE pipeline_id = 3`: 1,
		`SELECT COUNT(*) FROM pipeline_variables WHERE pipeline_id = 2`: 1, `SELECT COUNT(*) FROM group_members`: 1,
	} {
		if got := count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	// Foreign keys still hold and still cascade.
	err = s.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, status, spec, created_at) VALUES (999, 1, 'x', 't', 0, 'pending', '{}', 0)`)
		return err
	})
	if err == nil {
		t.Error("a job with an unknown pipeline was accepted after the migration")
	}
	// No id comes back: not the deleted pipeline 3 (still named by the
	// delivery log), nor project 2 (named by its left-over runner), nor a
	// newest row deleted from now on.
	u, _ := s.UserByID(ctx, 1)
	p := &Project{NamespaceID: 1, Name: "n", Path: "n", FullPath: "g/n", Visibility: "private", CreatorID: u.ID}
	mustWrite(t, s, func(tx *Tx) error { return tx.CreateProject(ctx, p) })
	if p.ID <= 2 {
		t.Errorf("new project got id %d, a deleted project's", p.ID)
	}
	pl := &Pipeline{ProjectID: 1, Ref: "main", SHA: "abc", Source: "push", Status: "pending"}
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertPipeline(ctx, pl) })
	if pl.ID <= 3 {
		t.Errorf("new pipeline got id %d; pipeline 3 was deleted before the upgrade and is still named by the delivery log", pl.ID)
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.DeletePipeline(ctx, pl.ID) })
	pl2 := &Pipeline{ProjectID: 1, Ref: "main", SHA: "abc", Source: "push", Status: "pending"}
	mustWrite(t, s, func(tx *Tx) error { return tx.InsertPipeline(ctx, pl2) })
	if pl2.ID <= pl.ID {
		t.Errorf("pipeline id %d reused", pl2.ID)
	}
	mustWrite(t, s, func(tx *Tx) error { return tx.DeleteProject(ctx, 1) })
	if n := count(`SELECT COUNT(*) FROM pipelines`); n != 0 {
		t.Errorf("deleting the project left %d pipelines: the cascade was lost", n)
	}
}
