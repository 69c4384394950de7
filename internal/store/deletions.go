package store

import (
	"context"
	"strings"
)

// FileDeletion is a pending removal of files whose rows are gone: a job's
// trace and artifacts (JobID); a deleted pipeline's ref GitRef in the
// repository at ProjectPath; or, with ProjectPath and no GitRef, a whole
// project's repository, caches and build directories.
type FileDeletion struct {
	ID          int64
	JobID       int64
	ProjectPath string
	GitRef      string
}

// recordJobFiles queues the files of every job matched by where (a
// condition on jobs with one ? argument) for removal after commit.
func (t *Tx) recordJobFiles(ctx context.Context, where string, arg any) error {
	_, err := t.Exec(ctx, `INSERT INTO file_deletions (job_id, created_at) SELECT id, ? FROM jobs WHERE `+where, Now(), arg)
	return err
}

// PendingFileDeletions lists queued file removals, oldest first.
func (s *Store) PendingFileDeletions(ctx context.Context, limit int) ([]FileDeletion, error) {
	rows, err := s.query(ctx, `SELECT id, COALESCE(job_id, 0), project_path, git_ref FROM file_deletions ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []FileDeletion
	for rows.Next() {
		var d FileDeletion
		if err := rows.Scan(&d.ID, &d.JobID, &d.ProjectPath, &d.GitRef); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DoneFileDeletions forgets removals that were carried out.
func (t *Tx) DoneFileDeletions(ctx context.Context, ids []int64) error {
	return idChunks(ids, func(args []any) error {
		_, err := t.Exec(ctx, `DELETE FROM file_deletions WHERE id IN (`+placeholders(len(args))+`)`, args...)
		return err
	})
}

// idChunks calls f with ids as query arguments, at most 500 at a time.
func idChunks(ids []int64, f func(args []any) error) error {
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		if err := f(args); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// projectPathPendingDeletion reports whether a deleted project's files at
// path (lower-cased full path) are still being removed.
func (t *Tx) projectPathPendingDeletion(ctx context.Context, path string) (bool, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM file_deletions WHERE project_path = ? AND git_ref = ''`, strings.ToLower(path)).Scan(&n)
	return n > 0, err
}

// ExistingJobIDs returns which of ids are jobs that exist.
func (s *Store) ExistingJobIDs(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	err := idChunks(ids, func(args []any) error {
		rows, err := s.query(ctx, `SELECT id FROM jobs WHERE id IN (`+placeholders(len(args))+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
