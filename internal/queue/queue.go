// Package queue wakes long-polling runners when jobs become pending.
//
// A Notifier keeps a generation counter that every wake-up increments. A
// waiting runner remembers the generation at which it last found nothing to
// do; it only needs to query the database again once the generation has
// moved, so an idle server answers polls without touching the database.
// Memory is the single-process implementation; Postgres adds LISTEN/NOTIFY
// so that server replicas sharing one database wake each other's runners.
package queue

import (
	"context"
	"sync"
)

// Notifier is what the runner API waits on.
type Notifier interface {
	// Notify reports that jobs may have become pending (or that runners
	// changed so that waiting jobs may now match). Call it after commit.
	Notify()
	// Generation is the current wake-up count.
	Generation() uint64
	// Wait blocks until the generation differs from seen or ctx ends, and
	// returns the generation it observed.
	Wait(ctx context.Context, seen uint64) uint64
}

// Memory is an in-process Notifier: a broadcast built from a channel that is
// closed (and replaced) on every Notify.
type Memory struct {
	mu  sync.Mutex
	gen uint64
	ch  chan struct{}
}

// NewMemory returns an in-process Notifier.
func NewMemory() *Memory { return &Memory{ch: make(chan struct{})} }

// Notify bumps the generation and wakes every waiter.
func (m *Memory) Notify() {
	m.mu.Lock()
	m.gen++
	close(m.ch)
	m.ch = make(chan struct{})
	m.mu.Unlock()
}

// Generation returns the current generation.
func (m *Memory) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Wait blocks until the generation is not seen, or ctx is done.
func (m *Memory) Wait(ctx context.Context, seen uint64) uint64 {
	for {
		m.mu.Lock()
		gen, ch := m.gen, m.ch
		m.mu.Unlock()
		if gen != seen {
			return gen
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return m.Generation()
		}
	}
}
