// Package pipewatch shares one database poll per pipeline among everyone
// following it (pipeline event streams): however many clients follow a
// pipeline, the database sees one read of it per interval, and the poll
// stops when the last follower leaves or the pipeline can no longer change.
package pipewatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/pipeline/state"
	"github.com/kilnci/kiln/internal/store"
)

// Source reads a pipeline and its jobs.
type Source interface {
	PipelineByID(ctx context.Context, id int64) (*store.Pipeline, error)
	JobsOfPipeline(ctx context.Context, pipelineID int64) ([]*store.Job, error)
}

// Snapshot is one reading of a pipeline. Gone means it was deleted; Final
// that it is finished and will not change again.
type Snapshot struct {
	Pipeline *store.Pipeline
	Jobs     []*store.Job
	Gone     bool
	Final    bool
}

// Hub runs the shared polls.
type Hub struct {
	src      Source
	interval time.Duration

	mu      sync.Mutex
	watches map[int64]*watch
	polls   int // reads made, for tests and metrics
	ctx     context.Context
	stop    context.CancelFunc
}

type watch struct {
	subs    int
	snap    *Snapshot
	version uint64
	changed chan struct{} // closed and replaced on every new snapshot
	err     error
}

// New returns a hub polling each followed pipeline every interval.
func New(src Source, interval time.Duration) *Hub {
	ctx, stop := context.WithCancel(context.Background())
	return &Hub{src: src, interval: interval, watches: map[int64]*watch{}, ctx: ctx, stop: stop}
}

// Close stops every poll; followers see their streams end.
func (h *Hub) Close() { h.stop() }

// Polls returns how many pipeline reads the hub has made.
func (h *Hub) Polls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polls
}

// Follower follows one pipeline.
type Follower struct {
	h       *Hub
	id      int64
	w       *watch
	version uint64
	closed  bool
}

// Follow starts following pipeline id; call Close when done.
func (h *Hub) Follow(id int64) *Follower {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watches[id]
	if w == nil {
		w = &watch{changed: make(chan struct{})}
		h.watches[id] = w
		go h.poll(id, w)
	}
	w.subs++
	return &Follower{h: h, id: id, w: w}
}

// Close stops following.
func (f *Follower) Close() {
	if f.closed {
		return
	}
	f.closed = true
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	f.w.subs--
}

// ErrStopped is returned by Next once the hub is closed.
var ErrStopped = errors.New("pipewatch: stopped")

// Next waits for a snapshot newer than the last one this follower saw.
func (f *Follower) Next(ctx context.Context) (*Snapshot, error) {
	for {
		f.h.mu.Lock()
		w := f.w
		snap, version, changed, err := w.snap, w.version, w.changed, w.err
		f.h.mu.Unlock()
		if version > f.version && snap != nil {
			f.version = version
			return snap, nil
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.h.ctx.Done():
			return nil, ErrStopped
		case <-changed:
		}
	}
}

func (h *Hub) publish(w *watch, snap *Snapshot, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if snap != nil {
		w.snap = snap
		w.version++
	}
	if err != nil {
		w.err = err
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// poll reads the pipeline every interval while anyone follows it,
// publishing a snapshot whenever a status changed.
func (h *Hub) poll(id int64, w *watch) {
	defer h.detach(id, w)
	var last string
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		h.mu.Lock()
		if w.subs <= 0 {
			// Nobody left: detach, so a new follower starts a new poll.
			if h.watches[id] == w {
				delete(h.watches, id)
			}
			h.mu.Unlock()
			return
		}
		h.polls++
		h.mu.Unlock()
		snap, err := h.read(id)
		if err != nil {
			h.publish(w, nil, err)
			return
		}
		if key := fingerprint(snap); key != last {
			last = key
			h.publish(w, snap, nil)
		}
		if snap.Gone || snap.Final {
			// Nothing will change any more: followers read this last
			// snapshot; a later follower starts a fresh (single) read.
			return
		}
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (h *Hub) detach(id int64, w *watch) {
	h.mu.Lock()
	if h.watches[id] == w {
		delete(h.watches, id)
	}
	h.mu.Unlock()
}

func (h *Hub) read(id int64) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	pl, err := h.src.PipelineByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &Snapshot{Gone: true}, nil
	}
	if err != nil {
		return nil, err
	}
	jobs, err := h.src.JobsOfPipeline(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Snapshot{Pipeline: pl, Jobs: jobs, Final: Finished(pl.Status)}, nil
}

// fingerprint changes whenever the pipeline's or a job's status does.
func fingerprint(s *Snapshot) string {
	if s.Gone {
		return "gone"
	}
	b := make([]byte, 0, 32+16*len(s.Jobs))
	b = append(b, s.Pipeline.Status...)
	for _, j := range s.Jobs {
		b = append(b, '|')
		b = append(b, j.Status...)
		if j.Retried {
			b = append(b, 'r')
		}
		b = append(b, byte(j.ID), byte(j.ID>>8), byte(j.ID>>16), byte(j.ID>>24))
	}
	return string(b)
}

// Finished reports whether a pipeline status is final (state.IsComplete).
func Finished(status string) bool {
	return state.IsComplete(state.Status(status))
}
