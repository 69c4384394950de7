// Package lifecycle is the one home of a server's background work: every
// loop (recovery, reapers, the scheduler, expiry, listeners, built-in
// runners) is registered here by name, started together, stopped together
// and reported on, so that none can be forgotten or left running.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Loop is one piece of background work.
type Loop struct {
	// Name identifies the loop in logs and Status; unique per Manager.
	Name string
	// Every > 0 makes Run one pass, run at Start and then every Every
	// (plus whenever Kick is called). Every == 0 makes Run the whole loop:
	// it runs until ctx ends.
	Every time.Duration
	// Run does the work. Its errors are logged and reported, never fatal.
	Run func(ctx context.Context) error
	// Shared marks periodic work that servers sharing one database must not
	// do at the same time: each pass runs under the Manager's Claim, and a
	// pass another server holds the claim for is skipped.
	Shared bool
	// Stop, if set, is called when the Manager stops, before Run's context
	// is cancelled (to let the loop finish gracefully, e.g. abort jobs and
	// report them while the server still answers).
	Stop func()
}

// Claim runs fn unless another server runs the same name now; it reports
// whether fn ran (store.Store.WithClaim).
type Claim func(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)

// Status is what a Manager reports about one loop.
type Status struct {
	Name    string
	Every   time.Duration
	Shared  bool
	Running bool      // started and not yet returned
	Passes  int64     // periodic passes completed (including skipped ones)
	Skipped int64     // passes skipped because another server held the claim
	LastRun time.Time // start of the last pass
	LastErr string    // error of the last pass or of the loop, "" if none
}

// Manager owns a set of loops.
type Manager struct {
	log   *slog.Logger
	claim Claim

	mu      sync.Mutex
	loops   []*entry
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type entry struct {
	Loop
	kick chan struct{}

	mu     sync.Mutex
	status Status
}

// New returns an empty Manager. claim may be nil (every pass runs).
func New(log *slog.Logger, claim Claim) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{log: log, claim: claim}
}

// Add registers a loop. Loops are added while the server is wired, before
// Start; adding later, twice, or without Run is a programming error.
func (m *Manager) Add(l Loop) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.started || m.stopped:
		return fmt.Errorf("lifecycle: %q added after start", l.Name)
	case l.Name == "" || l.Run == nil:
		return errors.New("lifecycle: a loop needs a name and a Run")
	case l.Every < 0:
		return fmt.Errorf("lifecycle: %q: negative period", l.Name)
	}
	for _, e := range m.loops {
		if e.Name == l.Name {
			return fmt.Errorf("lifecycle: %q added twice", l.Name)
		}
	}
	e := &entry{Loop: l, kick: make(chan struct{}, 1)}
	e.status = Status{Name: l.Name, Every: l.Every, Shared: l.Shared}
	m.loops = append(m.loops, e)
	return nil
}

// Names lists the registered loops in registration order.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.loops))
	for i, e := range m.loops {
		out[i] = e.Name
	}
	return out
}

// Start runs every loop, each in its own goroutine, until Stop. The loops
// do not inherit ctx's cancellation (only Stop ends them), only its values.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return
	}
	m.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	names := make([]string, 0, len(m.loops))
	for _, e := range m.loops {
		names = append(names, e.Name)
		e.setRunning(true)
		m.wg.Go(func() {
			defer e.setRunning(false)
			if e.Every > 0 {
				m.periodic(runCtx, e)
				return
			}
			err := m.safeRun(runCtx, e, e.Run)
			if err != nil && runCtx.Err() == nil {
				m.log.Error("background loop ended with an error", "loop", e.Name, "err", err)
			} else if runCtx.Err() == nil {
				m.log.Warn("background loop ended before shutdown", "loop", e.Name)
			}
		})
	}
	m.log.Info("background loops started", "loops", names)
}

// periodic runs e's passes until ctx ends.
func (m *Manager) periodic(ctx context.Context, e *entry) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		m.pass(ctx, e)
		t.Reset(e.Every)
	}
}

func (m *Manager) pass(ctx context.Context, e *entry) {
	start := time.Now()
	ran, err := true, error(nil)
	if e.Shared && m.claim != nil {
		ran, err = m.claim(ctx, e.Name, func(ctx context.Context) error { return m.safeRun(ctx, e, e.Run) })
	} else {
		err = m.safeRun(ctx, e, e.Run)
	}
	if ctx.Err() != nil {
		err = nil // cut short by Stop: not the loop's failure
	}
	e.mu.Lock()
	e.status.Passes++
	e.status.LastRun = start
	if !ran {
		e.status.Skipped++
	}
	e.status.LastErr = ""
	if err != nil {
		e.status.LastErr = err.Error()
	}
	e.mu.Unlock()
	if err != nil {
		m.log.Warn("background pass failed", "loop", e.Name, "err", err)
	}
}

// safeRun turns a panic in one loop into its error instead of the
// process's end.
func (m *Manager) safeRun(ctx context.Context, e *entry, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	err = fn(ctx)
	if err != nil {
		e.mu.Lock()
		e.status.LastErr = err.Error()
		e.mu.Unlock()
	}
	return err
}

func (e *entry) setRunning(v bool) {
	e.mu.Lock()
	e.status.Running = v
	e.mu.Unlock()
}

// Kick runs a periodic loop's next pass now (no-op for unknown names,
// continuous loops, or a pass already due).
func (m *Manager) Kick(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.loops {
		if e.Name == name {
			select {
			case e.kick <- struct{}{}:
			default:
			}
		}
	}
}

// Stop calls every loop's Stop hook (newest first), then cancels the loops
// and waits for all of them to return. It is safe to call more than once,
// and before Start.
func (m *Manager) Stop() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		m.wg.Wait()
		return
	}
	m.stopped = true
	started, cancel := m.started, m.cancel
	loops := slices.Clone(m.loops)
	m.mu.Unlock()
	if !started {
		return
	}
	for i := len(loops) - 1; i >= 0; i-- {
		if loops[i].Stop != nil {
			loops[i].Stop()
		}
	}
	cancel()
	m.wg.Wait()
	m.log.Info("background loops stopped")
}

// Status reports every loop, in registration order.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	loops := slices.Clone(m.loops)
	m.mu.Unlock()
	out := make([]Status, len(loops))
	for i, e := range loops {
		e.mu.Lock()
		out[i] = e.status
		e.mu.Unlock()
	}
	return out
}
