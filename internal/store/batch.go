package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// maxBatch bounds how many transactions share one commit, so that one slow
// batch cannot hold a long queue hostage.
const maxBatch = 128

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
type batcher struct {
	s    *Store
	conn *sql.Conn
	reqs chan *writeReq
	quit chan struct{}
	wg   sync.WaitGroup
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
	b := &batcher{s: s, conn: conn, reqs: make(chan *writeReq, 4096), quit: make(chan struct{})}
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
	for {
		var first *writeReq
		select {
		case first = <-b.reqs:
		case <-b.quit:
			return
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

func (b *batcher) run(batch []*writeReq) {
	ctx := context.Background()
	q := connQ{conn: b.conn, cache: b.s.wcache}
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	if _, err := b.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		fail(fmt.Errorf("begin transaction: %w", err))
		return
	}
	results := make([]error, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		results[i] = runSavepoint(ctx, q, b.s, r)
	}
	if _, err := b.conn.ExecContext(ctx, "COMMIT"); err != nil {
		b.conn.ExecContext(ctx, "ROLLBACK")
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

func runSavepoint(ctx context.Context, q connQ, s *Store, r *writeReq) (err error) {
	if _, err := q.ExecContext(ctx, "SAVEPOINT w"); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write transaction panicked: %v", p)
		}
		if err != nil {
			q.ExecContext(ctx, "ROLLBACK TO w")
			r.tx.after = nil
		}
		q.ExecContext(ctx, "RELEASE w")
	}()
	r.tx = &Tx{s: s, tx: q}
	return r.fn(r.tx)
}

// Write runs fn in a write transaction. When Write returns nil the changes
// are committed durably. fn must not call Write itself, and it may run more
// than once only if it returns a retryable error (it never does on SQLite).
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) error {
	if s.batcher != nil {
		r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1), tx: &Tx{s: s}}
		select {
		case s.batcher.reqs <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
		return <-r.done
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
