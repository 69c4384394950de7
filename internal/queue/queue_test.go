package queue

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kilnci/kiln/internal/testenv"
)

func TestMemoryWait(t *testing.T) {
	m := NewMemory()
	g := m.Generation()
	done := make(chan uint64)
	go func() { done <- m.Wait(context.Background(), g) }()
	time.Sleep(10 * time.Millisecond)
	m.Notify()
	select {
	case got := <-done:
		if got != g+1 {
			t.Fatalf("generation %d", got)
		}
	case <-time.After(time.Second):
		t.Fatal("not woken")
	}
	// A stale generation returns at once.
	if got := m.Wait(context.Background(), g); got != g+1 {
		t.Fatal(got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if got := m.Wait(ctx, g+1); got != g+1 {
		t.Fatal(got)
	}
}

// TestPostgresWakesOtherReplica: a Notify on one replica wakes the other's
// waiters through LISTEN/NOTIFY, and a replica ignores its own echo.
func TestPostgresWakesOtherReplica(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := NewPostgres(dsn, db, nil), NewPostgres(dsn, db, nil)
	lctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { a.Run(lctx) })
	wg.Go(func() { b.Run(lctx) })
	for _, p := range []*Postgres{a, b} {
		select {
		case <-p.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("listener not ready")
		}
	}
	gb := b.Generation()
	ga := a.Generation()
	start := time.Now()
	a.Notify()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got := b.Wait(ctx, gb); got == gb {
		t.Fatal("replica b was not woken")
	}
	t.Logf("cross-replica wake-up in %s", time.Since(start))
	time.Sleep(100 * time.Millisecond)
	if got := a.Generation(); got != ga+1 {
		t.Errorf("replica a woke %d times for its own notify", got-ga)
	}
}
