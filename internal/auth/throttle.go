package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Throttle is the one home of password-guessing defences, shared by web
// sign-in and git Basic auth:
//
//   - per account (the lower-cased user name, whether or not it exists, so
//     a lock says nothing about which accounts exist): MaxAttempts failures
//     lock it for LockFor, as GitLab's Devise lockable does (10 failures, 10
//     minutes); a success resets the count;
//   - per client address (an IPv6 address by its /64): a token bucket of
//     AddressBurst failures refilled at AddressPerMinute, beyond which
//     requests are refused before any password work;
//   - password hashing (PBKDF2, deliberately slow) runs at most Parallel at
//     a time; others wait up to Wait and are then refused as busy.
//
// The counts live in memory, per server process (a restart forgives
// everyone), or, with ThrottleConfig.Shared (the server sets it on
// PostgreSQL), in the database, so that every replica sees the same
// failures: 10 failures spread over two replicas lock the name on both.
// While the database fails, the in-memory counts are used.
type Throttle struct {
	cfg ThrottleConfig
	now func() time.Time
	sem chan struct{}

	mu       sync.Mutex
	accounts map[string]*account
	addrs    map[string]*addrBucket
	sweep    time.Time
}

// ThrottleConfig holds the limits; zero fields take DefaultThrottleConfig's.
type ThrottleConfig struct {
	MaxAttempts      int
	LockFor          time.Duration
	AddressBurst     int
	AddressPerMinute float64
	Parallel         int
	Wait             time.Duration
	// MaxEntries bounds the accounts and addresses remembered; beyond it
	// the oldest idle entries are forgotten first.
	MaxEntries int
	// Shared, if set, keeps the account and address counts there.
	Shared ThrottleStore
	// OnError is told when Shared fails (nil: ignored).
	OnError func(error)
}

// ThrottleStore keeps the throttle's counts where every replica sees them
// (the store: rate_counters). It only counts; the throttle decides.
type ThrottleStore interface {
	RateTake(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int, force bool) (bool, time.Duration, error)
	RatePeek(ctx context.Context, scope, subject string, now time.Time, every time.Duration, burst int) (time.Duration, error)
	CountHit(ctx context.Context, scope, subject string, now time.Time, ttl time.Duration, limit int) (int64, time.Time, error)
	CountGet(ctx context.Context, scope, subject string, now time.Time) (int64, time.Time, error)
	CountReset(ctx context.Context, scope, subject string) error
}

// Scopes of the throttle's shared counts.
const (
	scopeAccount = "signin-account-failures"
	scopeAddress = "signin-address-failures"
)

// sharedTimeout bounds one shared-count statement; a failure is counted
// even when its client leaves, so request contexts are not used.
const sharedTimeout = 2 * time.Second

func (t *Throttle) sharedCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), sharedTimeout)
}

// sharedFailed reports err (if any) and whether it happened.
func (t *Throttle) sharedFailed(err error) bool {
	if err != nil && t.cfg.OnError != nil {
		t.cfg.OnError(err)
	}
	return err != nil
}

// addressEvery is how long one address failure takes to be forgiven.
func (t *Throttle) addressEvery() time.Duration {
	return time.Duration(float64(time.Minute) / t.cfg.AddressPerMinute)
}

// DefaultThrottleConfig follows GitLab: 10 failures lock an account for 10
// minutes.
func DefaultThrottleConfig() ThrottleConfig {
	// Password hashing may use half the CPUs (at least one), so guessing
	// can never starve the rest of the server.
	parallel := runtime.NumCPU() / 2
	if parallel < 1 {
		parallel = 1
	}
	return ThrottleConfig{MaxAttempts: 10, LockFor: 10 * time.Minute, AddressBurst: 30, AddressPerMinute: 30, Parallel: parallel, Wait: 5 * time.Second, MaxEntries: 100000}
}

type account struct {
	failures    int
	lockedUntil time.Time
	last        time.Time
}

type addrBucket struct {
	tokens float64
	at     time.Time
}

// NewThrottle returns a throttle with cfg's limits.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	d := DefaultThrottleConfig()
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = d.MaxAttempts
	}
	if cfg.LockFor <= 0 {
		cfg.LockFor = d.LockFor
	}
	if cfg.AddressBurst <= 0 {
		cfg.AddressBurst = d.AddressBurst
	}
	if cfg.AddressPerMinute <= 0 {
		cfg.AddressPerMinute = d.AddressPerMinute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = d.Parallel
	}
	if cfg.Wait <= 0 {
		cfg.Wait = d.Wait
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = d.MaxEntries
	}
	return &Throttle{cfg: cfg, now: time.Now, sem: make(chan struct{}, cfg.Parallel), accounts: map[string]*account{}, addrs: map[string]*addrBucket{}}
}

func accountKey(username string) string {
	k := strings.ToLower(strings.TrimSpace(username))
	if len(k) > maxAccountKey {
		// No account has such a name (usernames are at most 255
		// characters): a fixed-size key, so that guesses with long made-up
		// names cannot make the counters (PostgreSQL rows on replicas) big.
		sum := sha256.Sum256([]byte(k))
		k = "sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}

// maxAccountKey is the longest user name counted under its own text.
const maxAccountKey = 255

// addrKey is the key an address's failures count under: an IPv6 address
// by its /64 (one host usually holds a whole /64 and can rotate through
// it, which would give it a fresh budget per request), an IPv4 address
// (or an IPv4-mapped IPv6 one) by itself.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// sweepLocked forgets entries that carry no state any more, and the
// oldest ones when over MaxEntries.
func (t *Throttle) sweepLocked(now time.Time) {
	if now.Sub(t.sweep) < time.Minute && len(t.accounts)+len(t.addrs) < t.cfg.MaxEntries {
		return
	}
	t.sweep = now
	for k, a := range t.accounts {
		if now.After(a.lockedUntil) && now.Sub(a.last) > t.cfg.LockFor {
			delete(t.accounts, k)
		}
	}
	rate := t.cfg.AddressPerMinute / 60
	for k, b := range t.addrs {
		if b.tokens+now.Sub(b.at).Seconds()*rate >= float64(t.cfg.AddressBurst) {
			delete(t.addrs, k)
		}
	}
	// Still too many (a flood of distinct names): forget unlocked accounts.
	for k, a := range t.accounts {
		if len(t.accounts)+len(t.addrs) < t.cfg.MaxEntries {
			break
		}
		if now.After(a.lockedUntil) {
			delete(t.accounts, k)
		}
	}
}

func (t *Throttle) addrLocked(ip string, now time.Time) *addrBucket {
	b := t.addrs[ip]
	burst := float64(t.cfg.AddressBurst)
	if b == nil {
		b = &addrBucket{tokens: burst, at: now}
		t.addrs[ip] = b
		return b
	}
	b.tokens += now.Sub(b.at).Seconds() * t.cfg.AddressPerMinute / 60
	if b.tokens > burst {
		b.tokens = burst
	}
	b.at = now
	return b
}

// AddressBlocked reports whether ip has used up its failures, and how long
// until it may try again.
func (t *Throttle) AddressBlocked(ip string) (bool, time.Duration) {
	ip = addrKey(ip)
	if sh := t.cfg.Shared; sh != nil {
		ctx, cancel := t.sharedCtx()
		wait, err := sh.RatePeek(ctx, scopeAddress, ip, t.now(), t.addressEvery(), t.cfg.AddressBurst)
		cancel()
		if !t.sharedFailed(err) {
			if wait <= 0 {
				return false, 0
			}
			return true, max(wait, time.Second)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweepLocked(now)
	b := t.addrLocked(ip, now)
	if b.tokens >= 1 {
		return false, 0
	}
	wait := time.Duration((1 - b.tokens) / (t.cfg.AddressPerMinute / 60) * float64(time.Second))
	if wait < time.Second {
		wait = time.Second
	}
	return true, wait
}

// AccountLocked reports whether username is locked, and until when.
func (t *Throttle) AccountLocked(username string) (bool, time.Time) {
	if sh := t.cfg.Shared; sh != nil {
		ctx, cancel := t.sharedCtx()
		hits, until, err := sh.CountGet(ctx, scopeAccount, accountKey(username), t.now())
		cancel()
		if !t.sharedFailed(err) {
			if hits < int64(t.cfg.MaxAttempts) {
				return false, time.Time{}
			}
			return true, until
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.accounts[accountKey(username)]
	if a == nil || !t.now().Before(a.lockedUntil) {
		return false, time.Time{}
	}
	return true, a.lockedUntil
}

// Fail records a failed attempt from ip for username ("" when no user name
// was involved, e.g. a token guess).
func (t *Throttle) Fail(ip, username string) {
	ip = addrKey(ip)
	if sh := t.cfg.Shared; sh != nil {
		ctx, cancel := t.sharedCtx()
		defer cancel()
		now := t.now()
		_, _, err := sh.RateTake(ctx, scopeAddress, ip, now, t.addressEvery(), t.cfg.AddressBurst, true)
		if err == nil && username != "" {
			// Kept LockFor after the latest failure while below the limit
			// (the in-memory counts are forgotten after LockFor idle too);
			// the MaxAttempts-th locks the name for LockFor.
			_, _, err = sh.CountHit(ctx, scopeAccount, accountKey(username), now, t.cfg.LockFor, t.cfg.MaxAttempts)
		}
		if !t.sharedFailed(err) {
			return
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweepLocked(now)
	if b := t.addrLocked(ip, now); b.tokens >= 1 {
		b.tokens--
	} else {
		b.tokens = 0
	}
	if username == "" {
		return
	}
	k := accountKey(username)
	a := t.accounts[k]
	if a == nil {
		a = &account{}
		t.accounts[k] = a
	}
	if !now.Before(a.lockedUntil) && !a.lockedUntil.IsZero() {
		// The lock expired: start counting afresh, as Devise does.
		a.failures, a.lockedUntil = 0, time.Time{}
	}
	a.failures++
	a.last = now
	if a.failures >= t.cfg.MaxAttempts && a.lockedUntil.IsZero() {
		a.lockedUntil = now.Add(t.cfg.LockFor)
	}
}

// Succeed clears username's failure count.
func (t *Throttle) Succeed(username string) {
	if sh := t.cfg.Shared; sh != nil {
		ctx, cancel := t.sharedCtx()
		err := sh.CountReset(ctx, scopeAccount, accountKey(username))
		cancel()
		t.sharedFailed(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, accountKey(username))
}

// ErrBusy means too many password checks are running; retry later.
var ErrBusy = errors.New("auth: too many password checks in progress")

// CheckPassword is auth.CheckPassword run under the parallelism bound.
func (t *Throttle) CheckPassword(ctx context.Context, stored, password string) (bool, error) {
	timer := time.NewTimer(t.cfg.Wait)
	defer timer.Stop()
	select {
	case t.sem <- struct{}{}:
	case <-timer.C:
		return false, ErrBusy
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-t.sem }()
	return CheckPassword(stored, password), nil
}
