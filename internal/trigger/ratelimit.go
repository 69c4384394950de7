package trigger

import (
	"context"
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by a string (a client address, a
// project id). Each bucket holds up to Burst tokens and regains Rate tokens
// per second. By default it lives in memory: a restart forgives everyone,
// which is acceptable for abuse protection and keeps the hot path free of
// writes. Shared (Share) keeps the buckets in the database instead, so
// that replicas of one server count against one budget.
type Limiter struct {
	Burst float64
	Rate  float64 // tokens per second
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time

	shared Shared
	scope  string
	onErr  func(error)
	peeks  map[string]*peek
}

// Shared keeps token buckets where every replica sees them: the store on
// PostgreSQL (store.RateTake, store.RatePeek, GCRA in one statement each).
// The limiter's policy (burst, rate, what a refusal says) stays with its
// owner; the shared store only counts.
type Shared interface {
	RateTake(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int, force bool) (bool, time.Duration, error)
	RatePeek(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int) (time.Duration, error)
}

// PeekFor is how long a shared limiter trusts what it last read of a
// bucket for Blocked (a read-only check that every trigger call makes):
// a bucket emptied on another replica is noticed here within PeekFor,
// while Allow and Take always go to the database.
const PeekFor = time.Second

// sharedTimeout bounds one shared-bucket statement. A call is counted
// even when its client leaves, so the request's context is not used.
const sharedTimeout = 2 * time.Second

// peek is what Blocked last read of a shared bucket.
type peek struct {
	at, until time.Time
	noted     bool
}

// Share makes l keep its buckets in sh under scope (a name that is unique
// among the server's limiters); onErr is told of database errors, during
// which l falls back to its in-memory buckets. It returns l.
func (l *Limiter) Share(sh Shared, scope string, onErr func(error)) *Limiter {
	if l == nil || sh == nil {
		return l
	}
	l.shared, l.scope, l.onErr, l.peeks = sh, scope, onErr, map[string]*peek{}
	return l
}

// every is the time one token takes to come back.
func (l *Limiter) every() time.Duration {
	if l.Rate <= 0 {
		return time.Hour
	}
	return time.Duration(float64(time.Second) / l.Rate)
}

func (l *Limiter) failed(err error) {
	if l.onErr != nil {
		l.onErr(err)
	}
}

// sharedTake takes a token from the shared bucket; ok is false when the
// database failed and the caller must use the in-memory bucket.
func (l *Limiter) sharedTake(key string, force bool) (allowed bool, wait time.Duration, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	now := l.now()
	allowed, wait, err := l.shared.RateTake(ctx, l.scope, key, now, l.every(), int(l.Burst), force)
	if err != nil {
		l.failed(err)
		return false, 0, false
	}
	l.mu.Lock()
	p := l.peekLocked(key, now)
	p.at, p.until = now, now.Add(wait)
	l.mu.Unlock()
	return allowed, wait, true
}

// peekLocked returns key's cached peek, forgetting stale ones now and then.
func (l *Limiter) peekLocked(key string, now time.Time) *peek {
	if now.Sub(l.sweep) > time.Minute {
		l.sweep = now
		for k, p := range l.peeks {
			if now.Sub(p.at) > PeekFor && !now.Before(p.until) {
				delete(l.peeks, k)
			}
		}
	}
	p := l.peeks[key]
	if p == nil {
		p = &peek{}
		l.peeks[key] = p
	}
	return p
}

type bucket struct {
	tokens float64
	at     time.Time
	// noted is set once a refusal was recorded for the current empty spell,
	// so that a flood of refused calls costs one delivery row, not one each.
	noted bool
}

// NewLimiter returns a limiter allowing burst events at once and perMinute
// events per minute on average.
func NewLimiter(burst int, perMinute float64) *Limiter {
	return &Limiter{Burst: float64(burst), Rate: perMinute / 60, buckets: map[string]*bucket{}}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// get returns key's bucket refilled up to now; l.mu must be held.
func (l *Limiter) get(key string, now time.Time) *bucket {
	if now.Sub(l.sweep) > time.Minute {
		// Forget buckets that have refilled completely: they carry no state.
		l.sweep = now
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.at).Seconds()*l.Rate >= l.Burst {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.Burst, at: now}
		l.buckets[key] = b
		return b
	}
	b.tokens += now.Sub(b.at).Seconds() * l.Rate
	if b.tokens > l.Burst {
		b.tokens = l.Burst
	}
	if b.tokens >= 1 {
		b.noted = false
	}
	b.at = now
	return b
}

// wait is how long until the bucket holds one token again.
func (l *Limiter) wait(b *bucket) time.Duration {
	if l.Rate <= 0 {
		return time.Hour
	}
	d := time.Duration((1 - b.tokens) / l.Rate * float64(time.Second))
	if d < time.Second {
		d = time.Second
	}
	return d
}

// Allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long to wait.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.Burst <= 0 {
		return true, 0
	}
	if l.shared != nil {
		if allowed, wait, ok := l.sharedTake(key, false); ok {
			if !allowed && wait < time.Second {
				wait = time.Second
			}
			return allowed, wait
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now())
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.wait(b)
}

// Blocked reports, without taking a token, whether key's bucket is empty,
// how long until it is not, and whether this is the first refusal of the
// current empty spell (callers log only that one).
func (l *Limiter) Blocked(key string) (blocked bool, retry time.Duration, first bool) {
	if l == nil || l.Burst <= 0 {
		return false, 0, false
	}
	if l.shared != nil {
		if blocked, retry, first, ok := l.sharedBlocked(key); ok {
			return blocked, retry, first
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now())
	if b.tokens >= 1 {
		return false, 0, false
	}
	first = !b.noted
	b.noted = true
	return true, l.wait(b), first
}

// Take removes one token from key's bucket (a failed attempt), even if the
// bucket is already empty.
func (l *Limiter) Take(key string) {
	if l == nil || l.Burst <= 0 {
		return
	}
	if l.shared != nil {
		if _, _, ok := l.sharedTake(key, true); ok {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now())
	if b.tokens >= 1 {
		b.tokens--
	}
}

// sharedBlocked is Blocked on the shared bucket, read at most once per
// PeekFor per key; ok is false when the database failed.
func (l *Limiter) sharedBlocked(key string) (blocked bool, retry time.Duration, first, ok bool) {
	now := l.now()
	l.mu.Lock()
	p := l.peekLocked(key, now)
	fresh := now.Sub(p.at) < PeekFor
	l.mu.Unlock()
	if !fresh {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		wait, err := l.shared.RatePeek(ctx, l.scope, key, now, l.every(), int(l.Burst))
		cancel()
		if err != nil {
			l.failed(err)
			return false, 0, false, false
		}
		l.mu.Lock()
		p = l.peekLocked(key, now)
		p.at, p.until = now, now.Add(wait)
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(p.until) {
		p.noted = false
		return false, 0, false, true
	}
	first, p.noted = !p.noted, true
	retry = p.until.Sub(now)
	if retry < time.Second {
		retry = time.Second
	}
	return true, retry, first, true
}

// Limiters keeps one Limiter per rate, for keys that each carry their own
// rate (a trigger token's rate_limit). The zero value is ready to use.
type Limiters struct {
	// Shared, Scope and OnErr, when Shared is set, make every rate's
	// limiter shared (Limiter.Share) under Scope: a key's bucket is one
	// row whatever its rate, so a changed rate applies at once.
	Shared Shared
	Scope  string
	OnErr  func(error)

	mu sync.Mutex
	m  map[int]*Limiter
}

// Allow takes one token from key's bucket under a limit of perMinute
// calls per minute (burst perMinute). perMinute <= 0 allows everything.
func (ls *Limiters) Allow(key string, perMinute int) (bool, time.Duration) {
	if perMinute <= 0 {
		return true, 0
	}
	ls.mu.Lock()
	if ls.m == nil {
		ls.m = map[int]*Limiter{}
	}
	l := ls.m[perMinute]
	if l == nil {
		l = NewLimiter(perMinute, float64(perMinute)).Share(ls.Shared, ls.Scope, ls.OnErr)
		ls.m[perMinute] = l
	}
	ls.mu.Unlock()
	return l.Allow(key)
}
