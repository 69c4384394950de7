package httplimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener bounds the connections open on a net.Listener. At the cap, a
// new connection evicts the connection that has been idle longest (a
// keep-alive connection between requests, or one that has sent nothing
// for staleNew); when every connection is busy, the new one is closed
// at once. Clients holding idle connections can therefore never lock out
// others, and the process never runs out of descriptors.
type Listener struct {
	net.Listener
	max      int
	staleNew time.Duration
	now      func() time.Time

	mu    sync.Mutex
	conns map[*conn]*connInfo
	// Refused counts connections closed at once because all were busy;
	// Evicted counts idle connections closed to make room.
	refused, evicted int
}

type connInfo struct {
	state http.ConnState
	since time.Time
}

// NewListener wraps ln, allowing at most max open connections.
func NewListener(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, max: max, staleNew: time.Second, now: time.Now, conns: map[*conn]*connInfo{}}
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

func (l *Listener) forget(c *conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Accept returns the next connection, making room for it if needed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, l: l}
		l.mu.Lock()
		var victim *conn
		if len(l.conns) >= l.max {
			victim = l.victimLocked()
			if victim == nil {
				l.refused++
				l.mu.Unlock()
				nc.Close()
				continue
			}
			l.evicted++
			delete(l.conns, victim)
		}
		l.conns[c] = &connInfo{state: http.StateNew, since: l.now()}
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
		}
		return c, nil
	}
}

// victimLocked picks the connection idle longest: keep-alive idle ones,
// or new ones that have sent nothing for staleNew.
func (l *Listener) victimLocked() *conn {
	now := l.now()
	var best *conn
	var bestSince time.Time
	for c, info := range l.conns {
		evictable := info.state == http.StateIdle || (info.state == http.StateNew && now.Sub(info.since) >= l.staleNew)
		if evictable && (best == nil || info.since.Before(bestSince)) {
			best, bestSince = c, info.since
		}
	}
	return best
}

// ConnState is the http.Server hook that tells the listener which
// connections are idle.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	info, ok := l.conns[c]
	if !ok {
		return
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		info.state, info.since = state, l.now()
	}
}

// Stats reports open connections and how many were refused or evicted.
func (l *Listener) Stats() (open, refused, evicted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), l.refused, l.evicted
}
