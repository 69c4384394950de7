package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
)

// maxBatch bounds how many transactions share one commit, so that one slow
// batch cannot hold a long queue hostage.
const maxBatch = 128

// ErrClosed is returned by Write after the store was closed.
var ErrClosed = errors.New("store is closed")

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
	tx   *Tx
}

// batcher implements group commit for SQLite: concurrent Write calls are
// queued and run back to back inside one transaction, each under its own
// savepoint, and one fsync makes the whole batch durable. A failing callback
// rolls back to its savepoint without touching its neighbours.
//
// Statements inside a batch never see a caller's cancellation: SQLite
// answers an interrupted write by rolling back the whole transaction, which
// would take the neighbours' work (already reported as pending) with it. A
// cancelled caller is skipped before its callback starts instead.
type batcher struct {
	s    *Store
	conn *sql.Conn
	reqs chan *writeReq
	quit chan struct{}
	// stopped is closed once the loop has exited and the queue was drained.
	stopped chan struct{}
	wg      sync.WaitGroup
}

func newBatcher(s *Store) *batcher {
	if s.Dialect != SQLite {
		return nil
	}
	conn, err := s.write.Conn(context.Background())
	if err != nil {
		// Without a dedicated connection writes still work, one per commit.
		return nil
	}
	b := &batcher{s: s, conn: conn, reqs: make(chan *writeReq, 4096), quit: make(chan struct{}), stopped: make(chan struct{})}
	s.wcache = newStmtCache(conn)
	b.wg.Add(1)
	go b.loop()
	return b
}

func (b *batcher) stop() {
	if b == nil {
		return
	}
	close(b.quit)
	b.wg.Wait()
	b.s.wcache.close()
	b.conn.Close()
}

func (b *batcher) loop() {
	defer b.wg.Done()
	defer close(b.stopped)
	for {
		var first *writeReq
		select {
		case first = <-b.reqs:
		case <-b.quit:
			// Whoever is still queued gets an answer rather than a hang.
			for {
				select {
				case r := <-b.reqs:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
		batch := []*writeReq{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.run(batch)
	}
}

// errBatchAborted fails callbacks whose batch could not be committed; their
// changes were rolled back with it.
var errBatchAborted = errors.New("write batch aborted")

func (b *batcher) run(batch []*writeReq) {
	ctx := context.Background()
	q := connQ{conn: b.conn, cache: b.s.wcache, rows: new([]*sql.Rows)}
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	if _, err := b.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		b.resetConn(ctx)
		fail(fmt.Errorf("begin transaction: %w", err))
		return
	}
	results := make([]error, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		var broken bool
		results[i], broken = runSavepoint(ctx, q, b.s, r)
		if broken {
			// The savepoint could not be undone or released: the transaction
			// is in an unknown state, so nothing of this batch may commit.
			b.conn.ExecContext(ctx, "ROLLBACK")
			b.resetConn(ctx)
			fail(fmt.Errorf("%w: %v", errBatchAborted, results[i]))
			return
		}
	}
	if _, err := b.conn.ExecContext(ctx, "COMMIT"); err != nil {
		if _, rerr := b.conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
			b.resetConn(ctx)
		}
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for i, r := range batch {
		if results[i] == nil {
			for _, fn := range r.tx.after {
				fn()
			}
		}
		r.done <- results[i]
	}
}

// resetConn replaces the batch connection when its transaction state can no
// longer be trusted, so that one bad batch does not break every later one.
func (b *batcher) resetConn(ctx context.Context) {
	b.conn.Raw(func(any) error { return driver.ErrBadConn })
	b.s.wcache.close()
	b.conn.Close()
	conn, err := b.s.write.Conn(ctx)
	if err != nil {
		return // the next batch reports the error from BEGIN
	}
	b.conn = conn
	b.s.wcache = newStmtCache(conn)
}

// runSavepoint runs one callback under its own savepoint. broken reports
// that the savepoint could not be rolled back or released.
func runSavepoint(ctx context.Context, q connQ, s *Store, r *writeReq) (err error, broken bool) {
	if _, err := q.ExecContext(ctx, "SAVEPOINT w"); err != nil {
		return err, true
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write transaction panicked: %v", p)
		}
		// Rows a callback left open would keep their cached statements busy.
		q.closeRows()
		if err != nil {
			if _, rerr := q.ExecContext(ctx, "ROLLBACK TO w"); rerr != nil {
				broken = true
			}
			r.tx.after = nil
		}
		if _, rerr := q.ExecContext(ctx, "RELEASE w"); rerr != nil {
			broken = true
			if err == nil {
				err = rerr
			}
		}
	}()
	r.tx = &Tx{s: s, tx: q}
	return r.fn(r.tx), false
}

// Write runs fn in a write transaction. When Write returns nil the changes
// are committed durably. fn must not call Write itself, and it may run more
// than once only if it returns a retryable error (it never does on SQLite).
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	if b := s.batcher; b != nil {
		r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1), tx: &Tx{s: s}}
		select {
		case b.reqs <- r:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stopped:
			return ErrClosed
		}
		select {
		case err := <-r.done:
			return err
		case <-b.stopped:
			// Taken requests are answered before stopped closes.
			select {
			case err := <-r.done:
				return err
			default:
				return ErrClosed
			}
		}
	}
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{s: s, tx: sqlTx}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return mapErr(err)
	}
	for _, fn := range tx.after {
		fn()
	}
	return nil
}
