package store

import (
	"context"
	"time"
)

// IdempotencyKey is the pipeline a caller's Idempotency-Key created.
type IdempotencyKey struct {
	ProjectID int64
	// Scope is the caller: "trigger:<id>", "user:<id>", "job:<id>".
	Scope       string
	Key         string
	RequestHash string
	PipelineID  int64
	CreatedAt   time.Time
}

// IdempotencyKeyOf returns the key recorded at or after since, or
// ErrNotFound.
func (s *Store) IdempotencyKeyOf(ctx context.Context, projectID int64, scope, key string, since time.Time) (*IdempotencyKey, error) {
	k := &IdempotencyKey{ProjectID: projectID, Scope: scope, Key: key}
	var created int64
	err := s.queryRow(ctx, `SELECT request_hash, pipeline_id, created_at FROM idempotency_keys
		WHERE project_id = ? AND scope = ? AND idem_key = ? AND created_at >= ?`, projectID, scope, key, since.UnixMicro()).
		Scan(&k.RequestHash, &k.PipelineID, &created)
	if err != nil {
		return nil, mapErr(err)
	}
	k.CreatedAt = Time(created)
	return k, nil
}

// InsertIdempotencyKey records k. A row of the same key recorded before
// expired is replaced; a live one makes the insert fail with ErrConflict
// (the unique index decides, also between replicas).
func (t *Tx) InsertIdempotencyKey(ctx context.Context, k *IdempotencyKey, expired time.Time) error {
	if _, err := t.Exec(ctx, `DELETE FROM idempotency_keys WHERE project_id = ? AND scope = ? AND idem_key = ? AND created_at < ?`,
		k.ProjectID, k.Scope, k.Key, expired.UnixMicro()); err != nil {
		return err
	}
	now := Now()
	_, err := t.InsertID(ctx, `INSERT INTO idempotency_keys (project_id, scope, idem_key, request_hash, pipeline_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ProjectID, k.Scope, k.Key, k.RequestHash, k.PipelineID, now)
	if err == nil {
		k.CreatedAt = Time(now)
	}
	return err
}

// PruneIdempotencyKeys deletes keys recorded before t; it returns how many
// rows went.
func (t *Tx) PruneIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
