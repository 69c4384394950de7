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

	mu     sync.Mutex
	conns  map[*conn]*connInfo
	byAddr map[string]int
	// Refused counts connections closed at once because all were busy;
	// Evicted counts idle connections closed to make room.
	refused, evicted int
}

type connInfo struct {
	state http.ConnState
	since time.Time
	addr  string // the peer's host, for fairness between clients
}

// NewListener wraps ln, allowing at most max open connections.
func NewListener(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, max: max, staleNew: time.Second, now: time.Now, conns: map[*conn]*connInfo{}, byAddr: map[string]int{}}
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
	l.dropLocked(c)
	l.mu.Unlock()
}

func (l *Listener) dropLocked(c *conn) {
	info, ok := l.conns[c]
	if !ok {
		return
	}
	delete(l.conns, c)
	if l.byAddr[info.addr]--; l.byAddr[info.addr] <= 0 {
		delete(l.byAddr, info.addr)
	}
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
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
			l.dropLocked(victim)
		}
		addr := hostOf(nc.RemoteAddr())
		l.conns[c] = &connInfo{state: http.StateNew, since: l.now(), addr: addr}
		l.byAddr[addr]++
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
		}
		return c, nil
	}
}

// victimLocked picks an evictable connection (keep-alive idle, or new and
// silent for staleNew) of the client address holding the most
// connections, the one idle longest among those: a client hoarding
// connections loses its own first.
func (l *Listener) victimLocked() *conn {
	now := l.now()
	var best *conn
	var bestInfo *connInfo
	for c, info := range l.conns {
		evictable := info.state == http.StateIdle || (info.state == http.StateNew && now.Sub(info.since) >= l.staleNew)
		if !evictable {
			continue
		}
		if best == nil || l.byAddr[info.addr] > l.byAddr[bestInfo.addr] ||
			(l.byAddr[info.addr] == l.byAddr[bestInfo.addr] && info.since.Before(bestInfo.since)) {
			best, bestInfo = c, info
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
		l.dropLocked(c)
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
