package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func status(m *Manager, name string) Status {
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func TestAddRejects(t *testing.T) {
	m := New(nil, nil)
	run := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name string
		l    Loop
	}{
		{"no name", Loop{Run: run}},
		{"no run", Loop{Name: "x"}},
		{"negative period", Loop{Name: "x", Run: run, Every: -time.Second}},
	} {
		if err := m.Add(tc.l); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := m.Add(Loop{Name: "a", Run: run}); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(Loop{Name: "a", Run: run}); err == nil {
		t.Error("duplicate name accepted")
	}
	m.Start(context.Background())
	defer m.Stop()
	if err := m.Add(Loop{Name: "late", Run: run}); err == nil {
		t.Error("loop added after Start accepted")
	}
}

// TestPeriodicAndContinuous: a periodic loop runs at once and again every
// period and on Kick; a continuous loop runs until Stop; Stop hooks run
// before the loops' context ends; errors and panics are reported, not fatal.
func TestPeriodicAndContinuous(t *testing.T) {
	m := New(nil, nil)
	var passes, stopHook atomic.Int64
	var sawStopBeforeCancel atomic.Bool
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Add(Loop{Name: "tick", Every: time.Hour, Run: func(context.Context) error {
		passes.Add(1)
		return nil
	}}))
	must(m.Add(Loop{Name: "failing", Every: time.Hour, Run: func(context.Context) error { return errors.New("boom") }}))
	must(m.Add(Loop{Name: "panicking", Every: time.Hour, Run: func(context.Context) error { panic("oops") }}))
	must(m.Add(Loop{Name: "forever", Run: func(ctx context.Context) error {
		<-ctx.Done()
		sawStopBeforeCancel.Store(stopHook.Load() == 1)
		return nil
	}, Stop: func() { stopHook.Add(1) }}))
	if got := m.Names(); len(got) != 4 || got[0] != "tick" || got[3] != "forever" {
		t.Fatalf("Names = %v", got)
	}
	m.Start(context.Background())
	waitFor(t, "first pass at start", func() bool { return passes.Load() == 1 })
	m.Kick("tick")
	waitFor(t, "kicked pass", func() bool { return passes.Load() == 2 })
	waitFor(t, "failing pass reported", func() bool { return status(m, "failing").LastErr == "boom" })
	waitFor(t, "panic reported", func() bool { return status(m, "panicking").LastErr == "panic: oops" })
	if s := status(m, "forever"); !s.Running {
		t.Errorf("continuous loop not running: %+v", s)
	}
	m.Stop()
	m.Stop() // idempotent
	if !sawStopBeforeCancel.Load() {
		t.Error("Stop hook did not run before the loop's context ended")
	}
	for _, s := range m.Status() {
		if s.Running {
			t.Errorf("%s still running after Stop", s.Name)
		}
	}
}

// TestSharedPassesUseTheClaim: a Shared loop's pass runs inside the claim,
// and a pass whose claim another server holds is skipped and counted.
func TestSharedPassesUseTheClaim(t *testing.T) {
	var held atomic.Bool
	var ran atomic.Int64
	claim := func(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
		if held.Load() {
			return false, nil
		}
		return true, fn(ctx)
	}
	m := New(nil, claim)
	if err := m.Add(Loop{Name: "recover", Every: time.Hour, Shared: true, Run: func(context.Context) error { ran.Add(1); return nil }}); err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	defer m.Stop()
	waitFor(t, "first pass", func() bool { return ran.Load() == 1 })
	held.Store(true)
	m.Kick("recover")
	waitFor(t, "skipped pass", func() bool { return status(m, "recover").Skipped == 1 })
	if ran.Load() != 1 {
		t.Errorf("pass ran while another server held the claim")
	}
}

func TestStopBeforeStart(t *testing.T) {
	m := New(nil, nil)
	var ran atomic.Bool
	_ = m.Add(Loop{Name: "x", Every: time.Millisecond, Run: func(context.Context) error { ran.Store(true); return nil }})
	m.Stop()
	m.Start(context.Background()) // after Stop: nothing starts
	time.Sleep(20 * time.Millisecond)
	if ran.Load() {
		t.Error("a loop ran after Stop")
	}
}
