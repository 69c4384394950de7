package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Rate counters: the state of rate limits and throttles in the database,
// so that every replica on one PostgreSQL database counts against the same
// budget. The store only counts; the policies (how many, per what, what
// a refusal says) stay with their callers (internal/trigger's limiters,
// internal/auth's throttle). Each operation is one statement on the
// rate_counters table (UNLOGGED on PostgreSQL: no fsync to wait for).
//
// Two kinds of rows share the table, told apart by scope:
//
//   - token buckets (RateTake, RatePeek) as GCRA: tat is the theoretical
//     arrival time; a call at now conforms when tat <= now + (burst-1) *
//     every, and moves tat to max(tat, now) + every;
//   - failure counters (CountHit, CountGet, CountReset): hits failures,
//     forgotten at tat.

// rateRow runs one statement that returns a row, on PostgreSQL straight
// on the pool (autocommit), on SQLite inside a Write (group commit).
func (s *Store) rateRow(ctx context.Context, q string, args []any, dest ...any) error {
	if s.Dialect == Postgres {
		return s.write.QueryRowContext(ctx, s.rebind(q), args...).Scan(dest...)
	}
	return s.Write(ctx, func(tx *Tx) error { return tx.QueryRow(ctx, q, args...).Scan(dest...) })
}

// RateTake takes one token from the bucket (scope, subject) that holds up
// to burst tokens and regains one every every. It reports whether a token
// was there and how long until the next one is (0: now). With force the
// token is taken even from an empty bucket (a failure that must count),
// which stays empty (never in debt), as the in-memory buckets do.
func (s *Store) RateTake(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int, force bool) (ok bool, wait time.Duration, err error) {
	if burst < 1 {
		burst = 1
	}
	n, T := now.UnixMicro(), every.Microseconds()
	if T < 1 {
		T = 1
	}
	tau := int64(burst-1) * T
	var tat int64
	if force {
		// tat moves on by one interval, capped at now + tau + T (empty).
		err = s.rateRow(ctx, `INSERT INTO rate_counters (scope, subject, tat, hits) VALUES (?, ?, ?, 0)
			ON CONFLICT (scope, subject) DO UPDATE SET tat = CASE WHEN rate_counters.tat > ? THEN ?
				WHEN rate_counters.tat > ? THEN rate_counters.tat + ? ELSE ? END
			RETURNING tat`, []any{scope, subject, n + T, n + tau, n + tau + T, n, T, n + T}, &tat)
		if err != nil {
			return false, 0, mapErr(err)
		}
		return true, gcraWait(tat, n, tau), nil
	}
	err = s.rateRow(ctx, `INSERT INTO rate_counters (scope, subject, tat, hits) VALUES (?, ?, ?, 0)
		ON CONFLICT (scope, subject) DO UPDATE SET tat = CASE WHEN rate_counters.tat > ? THEN rate_counters.tat + ? ELSE ? END
		WHERE rate_counters.tat <= ?
		RETURNING tat`, []any{scope, subject, n + T, n, T, n + T, n + tau}, &tat)
	if errors.Is(err, sql.ErrNoRows) {
		// Not conforming: nothing changed; say how long to wait.
		wait, err := s.RatePeek(ctx, scope, subject, now, every, burst)
		if wait <= 0 {
			wait = time.Millisecond // it conforms again already: a race
		}
		return false, wait, err
	}
	if err != nil {
		return false, 0, mapErr(err)
	}
	return true, gcraWait(tat, n, tau), nil
}

// gcraWait is how long after now (µs) a bucket with this tat conforms.
func gcraWait(tat, now, tau int64) time.Duration {
	if d := tat - now - tau; d > 0 {
		return time.Duration(d) * time.Microsecond
	}
	return 0
}

// RatePeek reports, without taking a token, how long until the bucket
// (scope, subject) has one (0: it has one now).
func (s *Store) RatePeek(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	if burst < 1 {
		burst = 1
	}
	var tat int64
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT tat FROM rate_counters WHERE scope = ? AND subject = ?`), scope, subject).Scan(&tat)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, mapErr(err)
	}
	return gcraWait(tat, now.UnixMicro(), int64(burst-1)*every.Microseconds()), nil
}

// CountHit records one failure for (scope, subject) and returns the count
// and until when it is kept. A count is kept for ttl after its latest hit
// while below limit; the hit that reaches limit keeps it for ttl from then
// (a lock of ttl), and later hits do not prolong it.
func (s *Store) CountHit(ctx context.Context, scope, subject string, now time.Time, ttl time.Duration, limit int) (hits int64, until time.Time, err error) {
	n, end := now.UnixMicro(), now.Add(ttl).UnixMicro()
	var tat int64
	err = s.rateRow(ctx, `INSERT INTO rate_counters (scope, subject, tat, hits) VALUES (?, ?, ?, 1)
		ON CONFLICT (scope, subject) DO UPDATE SET
			hits = CASE WHEN rate_counters.tat <= ? THEN 1 ELSE rate_counters.hits + 1 END,
			tat = CASE WHEN rate_counters.tat <= ? OR rate_counters.hits + 1 <= ? THEN ? ELSE rate_counters.tat END
		RETURNING hits, tat`, []any{scope, subject, end, n, n, limit, end}, &hits, &tat)
	if err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	return hits, time.UnixMicro(tat), nil
}

// CountGet returns the live count of (scope, subject) and until when it is
// kept (0 and the zero time when there is none).
func (s *Store) CountGet(ctx context.Context, scope, subject string, now time.Time) (hits int64, until time.Time, err error) {
	var tat int64
	err = s.read.QueryRowContext(ctx, s.rebind(`SELECT hits, tat FROM rate_counters WHERE scope = ? AND subject = ? AND tat > ?`), scope, subject, now.UnixMicro()).Scan(&hits, &tat)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	} else if err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	return hits, time.UnixMicro(tat), nil
}

// CountReset forgets (scope, subject)'s count.
func (s *Store) CountReset(ctx context.Context, scope, subject string) error {
	if s.Dialect == Postgres {
		_, err := s.write.ExecContext(ctx, s.rebind(`DELETE FROM rate_counters WHERE scope = ? AND subject = ?`), scope, subject)
		return mapErr(err)
	}
	return s.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM rate_counters WHERE scope = ? AND subject = ?`, scope, subject)
		return err
	})
}

// PruneRateCounters deletes the rows that carry no state any more (a full
// bucket, an expired count) as of now.
func (t *Tx) PruneRateCounters(ctx context.Context, now time.Time) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM rate_counters WHERE tat <= ?`, now.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
