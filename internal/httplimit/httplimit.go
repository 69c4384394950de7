// Package httplimit keeps one client from exhausting the HTTP server:
// per-request read and write deadlines chosen by route class, a cap on
// concurrent long-lived requests (in total and per client address), and a
// listener that bounds open connections, dropping idle ones first.
package httplimit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Class says how long a request may legitimately take.
type Class int

const (
	// Normal requests read a bounded body and answer promptly.
	Normal Class = iota
	// Transfer requests move large data (git, artifacts): long deadlines,
	// not counted as long-lived.
	Transfer
	// LongLived requests wait for something to happen (event streams):
	// long deadlines, counted against both concurrency caps.
	LongLived
	// Poll is a long poll that only authenticated callers can hold open
	// (runners' job requests: a bad token is answered at once): long
	// deadlines, counted against the total cap only, so that a host
	// running many runners is not limited per address.
	Poll
)

// Config holds the limits; zero values take the defaults of DefaultConfig.
type Config struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a normal request's body.
	BodyTimeout time.Duration
	// WriteTimeout bounds writing a normal request's response.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// StreamTimeout bounds transfers and long-lived requests.
	StreamTimeout time.Duration
	// MaxConns bounds open connections on the listener.
	MaxConns int
	// MaxLongLived and MaxLongLivedPerClient bound concurrent long-lived
	// requests, in total and per client address.
	MaxLongLived, MaxLongLivedPerClient int
}

// DefaultConfig returns the defaults for a process allowed fdLimit open
// descriptors: connections stay a quarter (at least 64) below it, so the
// database, repositories and job processes always have descriptors left.
func DefaultConfig(fdLimit int) Config {
	reserve := fdLimit / 4
	if reserve < 64 {
		reserve = 64
	}
	conns := fdLimit - reserve
	if conns < 16 {
		conns = 16
	}
	return Config{
		ReadHeaderTimeout:     10 * time.Second,
		BodyTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           60 * time.Second,
		StreamTimeout:         time.Hour,
		MaxConns:              conns,
		MaxLongLived:          conns / 2,
		MaxLongLivedPerClient: 64,
	}
}

// WithDefaults fills zero fields from DefaultConfig(fdLimit).
func (c Config) WithDefaults(fdLimit int) Config {
	d := DefaultConfig(fdLimit)
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&c.BodyTimeout, d.BodyTimeout)
	set(&c.WriteTimeout, d.WriteTimeout)
	set(&c.IdleTimeout, d.IdleTimeout)
	set(&c.StreamTimeout, d.StreamTimeout)
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxLongLived <= 0 {
		c.MaxLongLived = c.MaxConns / 2
	}
	if c.MaxLongLivedPerClient <= 0 {
		c.MaxLongLivedPerClient = d.MaxLongLivedPerClient
	}
	return c
}

// Guard applies deadlines and long-lived caps to requests.
type Guard struct {
	cfg      Config
	classify func(*http.Request) Class
	now      func() time.Time

	mu       sync.Mutex
	total    int
	byClient map[string]int
}

// NewGuard returns a Guard classifying requests with classify.
func NewGuard(cfg Config, classify func(*http.Request) Class) *Guard {
	return &Guard{cfg: cfg, classify: classify, now: time.Now, byClient: map[string]int{}}
}

// Config returns the guard's (defaulted) configuration.
func (g *Guard) Config() Config { return g.cfg }

// acquire takes a long-lived slot for client, reporting false when a cap
// is reached.
func (g *Guard) acquire(client string, perClient bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.cfg.MaxLongLived || (perClient && g.byClient[client] >= g.cfg.MaxLongLivedPerClient) {
		return false
	}
	g.total++
	if perClient {
		g.byClient[client]++
	}
	return true
}

func (g *Guard) release(client string, perClient bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if !perClient {
		return
	}
	if g.byClient[client]--; g.byClient[client] <= 0 {
		delete(g.byClient, client)
	}
}

// LongLived returns the number of long-lived requests in flight.
func (g *Guard) LongLived() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// ClientAddr is the client address limits are kept per: the TCP peer.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Handler wraps next with the deadlines and caps.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := g.now()
		switch class := g.classify(r); class {
		case LongLived, Poll:
			client, perClient := ClientAddr(r), class == LongLived
			if !g.acquire(client, perClient) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "10")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprintln(w, `{"message":"`+TooManyStreams+`"}`)
				return
			}
			defer g.release(client, perClient)
			_ = rc.SetReadDeadline(now.Add(g.cfg.StreamTimeout))
			_ = rc.SetWriteDeadline(now.Add(g.cfg.StreamTimeout))
		case Transfer:
			_ = rc.SetReadDeadline(now.Add(g.cfg.StreamTimeout))
			_ = rc.SetWriteDeadline(now.Add(g.cfg.StreamTimeout))
		default:
			_ = rc.SetReadDeadline(now.Add(g.cfg.BodyTimeout))
			_ = rc.SetWriteDeadline(now.Add(g.cfg.BodyTimeout + g.cfg.WriteTimeout))
			// The handler may find that it will wait (Hold).
			sl := &slot{g: g, client: ClientAddr(r), rc: rc}
			defer sl.release()
			r = r.WithContext(context.WithValue(r.Context(), slotKey{}, sl))
		}
		next.ServeHTTP(w, r)
	})
}

// RetryAfterSeconds renders d as a Retry-After value (whole seconds, at
// least 1).
func RetryAfterSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

type slotKey struct{}

// slot is a normal request's chance to become long-lived.
type slot struct {
	g      *Guard
	client string
	rc     *http.ResponseController
	mu     sync.Mutex
	held   bool
}

func (s *slot) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		s.g.release(s.client, true)
	}
}

// Hold moves a request that turned out to wait for something (a trigger
// call with wait=) under the long-lived rules: it takes one of the
// long-lived slots (in total and per client address) and gives the request
// the stream deadlines. ok is false when a cap is reached: the caller
// answers 429 (TooManyStreams) and does nothing. release gives the slot
// back early; it is given back when the handler returns anyway. Outside a
// Guard (tests) Hold always succeeds.
func Hold(r *http.Request) (release func(), ok bool) {
	sl, _ := r.Context().Value(slotKey{}).(*slot)
	if sl == nil {
		return func() {}, true
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.held {
		return sl.release, true
	}
	if !sl.g.acquire(sl.client, true) {
		return func() {}, false
	}
	sl.held = true
	now := sl.g.now()
	_ = sl.rc.SetReadDeadline(now.Add(sl.g.cfg.StreamTimeout))
	_ = sl.rc.SetWriteDeadline(now.Add(sl.g.cfg.StreamTimeout))
	return sl.release, true
}

// TooManyStreams is the 429 message of a long-lived cap.
const TooManyStreams = "429 Too Many Requests - too many open streams from this address or in total, retry later"
