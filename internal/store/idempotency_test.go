package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestIdempotencyKeys: one live row per key and caller, enforced by the
// database (concurrent inserts: exactly one wins), expired rows replaced
// and pruned.
func TestIdempotencyKeys(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ttl := 24 * time.Hour
		ins := func(k *IdempotencyKey) error {
			return s.Write(ctx, func(tx *Tx) error { return tx.InsertIdempotencyKey(ctx, k, time.Now().Add(-ttl)) })
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, lost := 0, 0
		for i := range 8 {
			wg.Go(func() {
				err := ins(&IdempotencyKey{ProjectID: 1, Scope: "trigger:1", Key: "k", RequestHash: "h", PipelineID: int64(100 + i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, ErrConflict):
					lost++
				default:
					t.Errorf("insert: %v", err)
				}
			})
		}
		wg.Wait()
		if won != 1 || lost != 7 {
			t.Fatalf("concurrent inserts: %d won, %d conflicted; want 1 and 7", won, lost)
		}
		if _, err := s.IdempotencyKeyOf(ctx, 1, "trigger:1", "k", time.Now().Add(-ttl)); err != nil {
			t.Fatal(err)
		}
		// Another caller's key of the same text is its own.
		if err := ins(&IdempotencyKey{ProjectID: 1, Scope: "user:1", Key: "k", RequestHash: "h2", PipelineID: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IdempotencyKeyOf(ctx, 1, "trigger:1", "k", time.Now().Add(time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a key older than since is found: %v", err)
		}
		// Once expired, the key is replaced instead of conflicting...
		err := s.Write(ctx, func(tx *Tx) error {
			return tx.InsertIdempotencyKey(ctx, &IdempotencyKey{ProjectID: 1, Scope: "trigger:1", Key: "k", RequestHash: "h3", PipelineID: 9}, time.Now().Add(time.Minute))
		})
		if err != nil {
			t.Fatalf("insert over an expired key: %v", err)
		}
		if k, _ := s.IdempotencyKeyOf(ctx, 1, "trigger:1", "k", time.Time{}); k == nil || k.PipelineID != 9 {
			t.Fatalf("replaced key: %+v", k)
		}
		// ...and pruned.
		var n int64
		s.Write(ctx, func(tx *Tx) error { n, err = tx.PruneIdempotencyKeys(ctx, time.Now().Add(time.Minute)); return err })
		if err != nil || n != 2 {
			t.Fatalf("pruned %d (%v), want 2", n, err)
		}
	})
}
