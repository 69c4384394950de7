package trigger

import (
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by a string (a client address, a
// project id). Each bucket holds up to Burst tokens and regains Rate tokens
// per second. It lives in memory: a restart forgives everyone, which is
// acceptable for abuse protection and keeps the hot path free of writes.
type Limiter struct {
	Burst float64
	Rate  float64 // tokens per second
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
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
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, l.now())
	if b.tokens >= 1 {
		b.tokens--
	}
}

// Limiters keeps one Limiter per rate, for keys that each carry their own
// rate (a trigger token's rate_limit). The zero value is ready to use.
type Limiters struct {
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
		l = NewLimiter(perMinute, float64(perMinute))
		ls.m[perMinute] = l
	}
	ls.mu.Unlock()
	return l.Allow(key)
}
