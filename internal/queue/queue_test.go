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

// TestPostgresAnnounceTopic: an announcement on one replica runs the
// other's callbacks for that topic (not its own, not other topics'), and
// wakes no runners; the same listener carries both.
func TestPostgresAnnounceTopic(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := NewPostgres(dsn, db, nil), NewPostgres(dsn, db, nil)
	got := map[string]chan struct{}{}
	for _, k := range []string{"a:schedules", "b:schedules", "b:other"} {
		got[k] = make(chan struct{}, 16)
	}
	a.OnAnnounce("schedules", func() { got["a:schedules"] <- struct{}{} })
	b.OnAnnounce("schedules", func() { got["b:schedules"] <- struct{}{} })
	b.OnAnnounce("other", func() { got["b:other"] <- struct{}{} })
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
	// Connecting runs every callback once (anything may have been missed).
	time.Sleep(200 * time.Millisecond)
	for _, c := range got {
		for len(c) > 0 {
			<-c
		}
	}
	gb := b.Generation()
	a.Announce("schedules")
	select {
	case <-got["b:schedules"]:
	case <-time.After(5 * time.Second):
		t.Fatal("replica b's schedules callback did not run")
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(got["a:schedules"]); n != 0 {
		t.Errorf("replica a ran its own callback %d times", n)
	}
	if n := len(got["b:other"]); n != 0 {
		t.Errorf("another topic's callback ran %d times", n)
	}
	if g := b.Generation(); g != gb {
		t.Errorf("an announcement woke runners (%d times)", g-gb)
	}
}
