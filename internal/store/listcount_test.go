package store

import (
	"context"
	"testing"
)

// TestListTotalsCapped: past TotalCap rows the lists stop counting, and the
// total they report still says whether a next page exists.
func TestListTotalsCapped(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u := &User{Username: "u", Name: "U", Email: "u@example.com"}
		var p *Project
		if err := s.Write(ctx, func(tx *Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
			t.Fatal(err)
		}
		ns, err := s.UserNamespace(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		p = &Project{NamespaceID: ns.ID, Name: "App", Path: "app", FullPath: "u/app", Visibility: "private", CreatorID: u.ID}
		if err := s.Write(ctx, func(tx *Tx) error { return tx.CreateProject(ctx, p) }); err != nil {
			t.Fatal(err)
		}
		const n = TotalCap + 25
		if err := s.Write(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO pipelines (project_id, iid, ref, sha, source, status, created_at, updated_at)
				WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				SELECT ?, i, 'main', 'abc', 'push', 'success', i, i FROM n`, n, p.ID)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, status, spec, created_at)
				SELECT id, project_id, 'test', 'test', 0, 'success', '{}', 1 FROM pipelines WHERE project_id = ?`, p.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			page      Page
			wantRows  int
			wantTotal func(int) bool
			what      string
		}{
			{Page{1, 20}, 20, func(t int) bool { return t > TotalCap && t > 20 }, "page 1"},
			{Page{501, 20}, 20, func(t int) bool { return t == 501*20+1 }, "page 501 (a next page exists)"},
			{Page{502, 20}, 5, func(t int) bool { return t == n }, "last page"},
		} {
			pls, total, err := s.ListPipelines(ctx, PipelineFilter{ProjectID: p.ID}, tc.page)
			if err != nil || len(pls) != tc.wantRows || !tc.wantTotal(total) {
				t.Errorf("pipelines %s: %d rows, total %d, %v", tc.what, len(pls), total, err)
			}
			jobs, total, err := s.ListJobs(ctx, JobFilter{ProjectID: p.ID, Kind: "build"}, tc.page)
			if err != nil || len(jobs) != tc.wantRows || !tc.wantTotal(total) {
				t.Errorf("jobs %s: %d rows, total %d, %v", tc.what, len(jobs), total, err)
			}
		}
		// Small lists stay exact.
		pl := int64(0)
		s.read.QueryRowContext(ctx, s.rebind(`SELECT MAX(id) FROM pipelines`)).Scan(&pl)
		jobs, total, err := s.ListJobs(ctx, JobFilter{ProjectID: p.ID, PipelineID: pl}, Page{1, 20})
		if err != nil || len(jobs) != 1 || total != 1 {
			t.Errorf("pipeline's jobs: %d rows, total %d, %v", len(jobs), total, err)
		}
	})
}
