package store

import (
	"context"
	"database/sql"
	"errors"
)

// TraceMeta is a live job log's row in job_traces (package traces decides
// what the numbers mean).
type TraceMeta struct {
	JobID int64
	// Size is the stored length (the chunks' total).
	Size int64
	// CutSize is the runner's offset once the log hit the size limit, -1
	// while it has not.
	CutSize int64
	// Archived: the chunks were copied to the blob store and deleted.
	Archived bool
}

// TraceChunk is one fixed-size piece of a live log.
type TraceChunk struct {
	Idx  int64
	Data []byte
}

func scanTraceMeta(row *sql.Row, id int64) (TraceMeta, error) {
	m := TraceMeta{JobID: id}
	var cut, archived sql.NullInt64
	if err := row.Scan(&m.Size, &cut, &archived); err != nil {
		return TraceMeta{}, mapErr(err)
	}
	m.CutSize = -1
	if cut.Valid {
		m.CutSize = cut.Int64
	}
	m.Archived = archived.Valid
	return m, nil
}

// LockTrace returns a job's log row for update, creating an empty one if
// there is none; on PostgreSQL the row stays locked until commit, so two
// replicas appending to one log take turns (SQLite's writer is one already).
//
// On PostgreSQL the transaction commits without waiting for its WAL flush
// (synchronous_commit off, this transaction only): a log append is the
// hottest write there is, and one lost to a database crash is harmless —
// the runner's next PATCH gets 416 with the stored length and sends the
// rest again.
func (t *Tx) LockTrace(ctx context.Context, jobID int64) (TraceMeta, error) {
	if t.s.Dialect == Postgres {
		if _, err := t.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return TraceMeta{}, err
		}
	}
	if _, err := t.Exec(ctx, `INSERT INTO job_traces (job_id, size, updated_at) VALUES (?, 0, ?) ON CONFLICT (job_id) DO NOTHING`, jobID, Now()); err != nil {
		return TraceMeta{}, err
	}
	q := `SELECT size, cut_size, archived_at FROM job_traces WHERE job_id = ?`
	if t.s.Dialect == Postgres {
		q += ` FOR UPDATE`
	}
	return scanTraceMeta(t.QueryRow(ctx, q, jobID), jobID)
}

// SetTrace records a log's stored length and cut offset (-1: not cut).
func (t *Tx) SetTrace(ctx context.Context, jobID, size, cutSize int64) error {
	var cut any
	if cutSize >= 0 {
		cut = cutSize
	}
	_, err := t.Exec(ctx, `UPDATE job_traces SET size = ?, cut_size = ?, updated_at = ? WHERE job_id = ?`, size, cut, Now(), jobID)
	return err
}

// TraceChunkData returns one chunk of a live log (nil if there is none).
func (t *Tx) TraceChunkData(ctx context.Context, jobID, idx int64) ([]byte, error) {
	var b []byte
	err := t.QueryRow(ctx, `SELECT data FROM trace_chunks WHERE job_id = ? AND idx = ?`, jobID, idx).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

// PutTraceChunk writes (or replaces) one chunk of a live log.
func (t *Tx) PutTraceChunk(ctx context.Context, jobID, idx int64, data []byte) error {
	_, err := t.Exec(ctx, `INSERT INTO trace_chunks (job_id, idx, data) VALUES (?, ?, ?) ON CONFLICT (job_id, idx) DO UPDATE SET data = excluded.data`, jobID, idx, data)
	return err
}

// ExtendTraceChunk replaces the bytes of a live log's chunk from keep on
// with data, reporting false when there is no such chunk or it is shorter
// than keep. On PostgreSQL the database does it, so the chunk does not
// travel to the server and back for every append.
func (t *Tx) ExtendTraceChunk(ctx context.Context, jobID, idx, keep int64, data []byte) (bool, error) {
	if t.s.Dialect == Postgres {
		res, err := t.Exec(ctx, `UPDATE trace_chunks SET data = substring(data FROM 1 FOR ?) || ? WHERE job_id = ? AND idx = ? AND length(data) >= ?`, keep, data, jobID, idx, keep)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		return n == 1, nil
	}
	prev, err := t.TraceChunkData(ctx, jobID, idx)
	if err != nil || int64(len(prev)) < keep {
		return false, err
	}
	return true, t.PutTraceChunk(ctx, jobID, idx, append(prev[:keep:keep], data...))
}

// DeleteTraceChunksFrom removes a live log's chunks from idx on.
func (t *Tx) DeleteTraceChunksFrom(ctx context.Context, jobID, idx int64) error {
	_, err := t.Exec(ctx, `DELETE FROM trace_chunks WHERE job_id = ? AND idx >= ?`, jobID, idx)
	return err
}

// TraceMeta returns a job's log row; ErrNotFound when the job never logged
// through the database (no output yet, or a log kept as a file by an
// older version).
func (s *Store) TraceMeta(ctx context.Context, jobID int64) (TraceMeta, error) {
	return scanTraceMeta(s.queryRow(ctx, `SELECT size, cut_size, archived_at FROM job_traces WHERE job_id = ?`, jobID), jobID)
}

// TraceChunks returns the chunks of a live log with from ≤ idx ≤ to, in
// order (missing ones are skipped: the caller checks continuity).
func (s *Store) TraceChunks(ctx context.Context, jobID, from, to int64) ([]TraceChunk, error) {
	rows, err := s.query(ctx, `SELECT idx, data FROM trace_chunks WHERE job_id = ? AND idx >= ? AND idx <= ? ORDER BY idx`, jobID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TraceChunk
	for rows.Next() {
		var c TraceChunk
		if err := rows.Scan(&c.Idx, &c.Data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ArchivableTraces lists live logs (not archived) whose job has finished,
// oldest first, at most limit. (A deleted job's log is the sweeper's.)
func (s *Store) ArchivableTraces(ctx context.Context, limit int) ([]TraceMeta, error) {
	rows, err := s.query(ctx, `SELECT t.job_id, t.size FROM job_traces t JOIN jobs j ON j.id = t.job_id
		WHERE t.archived_at IS NULL AND j.status IN ('success', 'failed', 'canceled', 'skipped')
		ORDER BY t.job_id LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TraceMeta
	for rows.Next() {
		m := TraceMeta{CutSize: -1}
		if err := rows.Scan(&m.JobID, &m.Size); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// FinishTraceArchive marks a live log archived and deletes its chunks,
// unless it changed (its size is no longer size) or was archived already;
// it reports whether it did.
func (t *Tx) FinishTraceArchive(ctx context.Context, jobID, size int64) (bool, error) {
	res, err := t.Exec(ctx, `UPDATE job_traces SET archived_at = ?, updated_at = ? WHERE job_id = ? AND size = ? AND archived_at IS NULL`, Now(), Now(), jobID, size)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	_, err = t.Exec(ctx, `DELETE FROM trace_chunks WHERE job_id = ?`, jobID)
	return err == nil, err
}

// DeleteTrace removes a job's log rows and chunks (job erased or deleted).
func (t *Tx) DeleteTrace(ctx context.Context, jobID int64) error {
	if _, err := t.Exec(ctx, `DELETE FROM trace_chunks WHERE job_id = ?`, jobID); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM job_traces WHERE job_id = ?`, jobID)
	return err
}

// TraceJobIDs lists the jobs that have a log row, for the sweeper that
// removes logs whose job is gone.
func (s *Store) TraceJobIDs(ctx context.Context) ([]int64, error) {
	rows, err := s.query(ctx, `SELECT job_id FROM job_traces`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
