package blob

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
)

// DefaultStallTimeout is how long an S3 connection may make no progress
// (connect, wait for an answer, move body bytes either way) before the
// request fails.
const DefaultStallTimeout = 30 * time.Second

// s3MaxRetries bounds minio's own retries of a failed request (it tries
// 10 times by default), so that a stalled server costs at most about
// s3MaxRetries × StallTimeout per call, not many minutes.
const s3MaxRetries = 3

// stallTransport is minio's default transport with every connection
// bounded by stall: a dial, the wait for response headers, and each read
// or write on the connection (a deadline renewed on every call, so a
// large object moving slowly but steadily is never cut; a server that
// stops answering, frozen or partitioned, is).
func stallTransport(secure bool, stall time.Duration) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: stall, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: stall}, nil
	}
	tr.ResponseHeaderTimeout = stall
	tr.TLSHandshakeTimeout = stall
	return tr, nil
}

// stallConn fails a Read or Write that makes no progress for stall.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.stall))
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	return c.Conn.Write(p)
}
