// Package stall bounds network connections that stop making progress: a
// peer that is frozen (SIGSTOPped), partitioned or wedged keeps a TCP
// connection open without sending or taking a byte, and a client without a
// bound waits for it as long as its context allows. The object store
// client of the server (internal/blob) and the runner's downloads from the
// object store (internal/runner/client) use it.
package stall

import (
	"context"
	"net"
	"net/http"
	"time"
)

// DefaultTimeout is how long a connection may make no progress (connect,
// wait for an answer, move body bytes either way) before the request
// fails.
const DefaultTimeout = 30 * time.Second

// Transport bounds every connection of tr (modified and returned) by d: a
// dial, a TLS handshake, the wait for response headers, and each read or
// write on the connection (a deadline renewed on every call, so a large
// body moving slowly but steadily is never cut; a peer that stops
// answering is).
func Transport(tr *http.Transport, d time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &Conn{Conn: c, Timeout: d}, nil
	}
	tr.ResponseHeaderTimeout = d
	tr.TLSHandshakeTimeout = d
	return tr
}

// Conn fails a Read or Write that makes no progress for Timeout (with an
// error matching os.ErrDeadlineExceeded).
type Conn struct {
	net.Conn
	Timeout time.Duration
}

func (c *Conn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Read(p)
}

func (c *Conn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Write(p)
}
