package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/testenv"
)

func TestRateTakeAndPeek(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Unix(1_800_000_000, 0)
		every := 10 * time.Second // 6 a minute, burst 3
		type step struct {
			at       time.Duration
			force    bool
			wantOK   bool
			wantWait time.Duration // after the call
		}
		steps := []step{
			{0, false, true, 0},
			{0, false, true, 0},
			{0, false, true, 10 * time.Second}, // the burst is used up
			{0, false, false, 10 * time.Second},
			{5 * time.Second, false, false, 5 * time.Second},
			{10 * time.Second, false, true, 10 * time.Second}, // one came back
			{10 * time.Second, true, true, 10 * time.Second},  // a forced take of an empty bucket...
			{10 * time.Second, true, true, 10 * time.Second},  // ...leaves it empty, never in debt
			{60 * time.Second, false, true, 0},
		}
		for i, st := range steps {
			ok, wait, err := s.RateTake(ctx, "test", "k", t0.Add(st.at), every, 3, st.force)
			if err != nil {
				t.Fatal(err)
			}
			if ok != st.wantOK || wait != st.wantWait {
				t.Fatalf("step %d: ok=%v wait=%s, want %v %s", i, ok, wait, st.wantOK, st.wantWait)
			}
		}
		if wait, err := s.RatePeek(ctx, "test", "k", t0.Add(60*time.Second), every, 3); err != nil || wait != 0 {
			t.Fatalf("peek: %s %v", wait, err)
		}
		if wait, err := s.RatePeek(ctx, "test", "other", t0, every, 3); err != nil || wait != 0 {
			t.Fatalf("peek unknown: %s %v", wait, err)
		}
		// Scopes are separate budgets.
		if ok, _, _ := s.RateTake(ctx, "test2", "k", t0.Add(5*time.Second), every, 1, false); !ok {
			t.Fatal("another scope shares the budget")
		}
		if err := s.Write(ctx, func(tx *Tx) error { _, err := tx.PruneRateCounters(ctx, t0.Add(time.Hour)); return err }); err != nil {
			t.Fatal(err)
		}
		var n int
		s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_counters`).Scan(&n)
		if n != 0 {
			t.Fatalf("%d rows left after pruning", n)
		}
	})
}

func TestCountHit(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Unix(1_800_000_000, 0)
		ttl := 10 * time.Minute
		tests := []struct {
			at       time.Duration
			wantHits int64
			wantEnd  time.Duration
		}{
			{0, 1, 10 * time.Minute},
			{time.Minute, 2, 11 * time.Minute},
			{2 * time.Minute, 3, 12 * time.Minute}, // the limit: kept 10 minutes from here
			{3 * time.Minute, 4, 12 * time.Minute}, // later hits do not prolong it
			{12 * time.Minute, 1, 22 * time.Minute},
		}
		for i, tt := range tests {
			hits, until, err := s.CountHit(ctx, "acct", "root", t0.Add(tt.at), ttl, 3)
			if err != nil {
				t.Fatal(err)
			}
			if hits != tt.wantHits || !until.Equal(t0.Add(tt.wantEnd)) {
				t.Fatalf("hit %d: %d until %s, want %d until %s", i, hits, until.Sub(t0), tt.wantHits, tt.wantEnd)
			}
		}
		if hits, _, err := s.CountGet(ctx, "acct", "root", t0.Add(13*time.Minute)); err != nil || hits != 1 {
			t.Fatalf("get: %d %v", hits, err)
		}
		if hits, _, _ := s.CountGet(ctx, "acct", "root", t0.Add(23*time.Minute)); hits != 0 {
			t.Fatalf("expired count still %d", hits)
		}
		if err := s.CountReset(ctx, "acct", "root"); err != nil {
			t.Fatal(err)
		}
		if hits, _, _ := s.CountGet(ctx, "acct", "root", t0.Add(13*time.Minute)); hits != 0 {
			t.Fatalf("reset count still %d", hits)
		}
	})
}

// TestRateTakeAcrossReplicas: concurrent takes through two stores on one
// PostgreSQL database get exactly the burst between them.
func TestRateTakeAcrossReplicas(t *testing.T) {
	eachDB(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		other := s
		if s.Dialect == Postgres {
			o, err := Open(ctx, testenv.PostgresDSN(t), nil, Options{Schema: s.schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			other = o
		}
		now := time.Now()
		var granted atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			st := []*Store{s, other}[i%2]
			wg.Go(func() {
				ok, _, err := st.RateTake(ctx, "trigger-token", "7", now, time.Minute/5, 5, false)
				if err != nil {
					t.Error(err)
				}
				if ok {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if g := granted.Load(); g != 5 {
			t.Fatalf("%d of 40 granted, want 5", g)
		}
	})
}
