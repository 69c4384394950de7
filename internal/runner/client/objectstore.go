package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/kilnci/kiln/internal/stall"
)

// splitTransport sends requests to the server's host through the client's
// own transport (long-polled job requests must not be cut) and every other
// request (an artifacts download redirected to a presigned object store
// URL, an upload redirected with 307) through a transport whose
// connections are bounded by stall.Transport: a frozen or partitioned
// object store fails the attempt after the stall timeout instead of
// holding the job for ten minutes per request or until its timeout.
type splitTransport struct {
	server  string
	own     http.RoundTripper
	bounded http.RoundTripper
	stall   time.Duration
}

func newSplitTransport(server string, own http.RoundTripper, d time.Duration) *splitTransport {
	if own == nil {
		own = http.DefaultTransport
	}
	var tr *http.Transport
	if t, ok := own.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &splitTransport{server: server, own: own, bounded: stall.Transport(tr, d), stall: d}
}

func (t *splitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.server {
		return t.own.RoundTrip(req)
	}
	return t.bounded.RoundTrip(req)
}

// stallOf returns the client's object store stall bound, 0 if none.
func (c *Client) stallOf() time.Duration {
	if t, ok := c.hc.Transport.(*splitTransport); ok {
		return t.stall
	}
	return 0
}

// objectStoreError rewrites a failed request or body read to another host
// than the server (the object store a download was redirected to) into a
// message that names that host and what went wrong, never the URL's query:
// a presigned URL carries a signature. host is the host the response came
// from when the body failed, "" when the request itself failed (then the
// url.Error says where it went). Failures of the server's own requests are
// returned unchanged.
func (c *Client) objectStoreError(ctx context.Context, err error, host string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
	}
	if host == "" || host == c.base.Host {
		return err
	}
	inner := err
	if ue != nil {
		inner = ue.Err
	}
	var ne net.Error
	// A stall, not the end of the job's own time (ctx).
	timeout := errors.As(inner, &ne) && ne.Timeout() && ctx.Err() == nil
	switch d := c.stallOf(); {
	case timeout && ue != nil:
		// No connection, TLS handshake or response headers within d.
		return fmt.Errorf("object store %s did not answer within %s (stalled or unreachable): %w", host, d, inner)
	case timeout:
		return fmt.Errorf("object store %s stopped sending: no data for %s (stalled): %w", host, d, inner)
	}
	return fmt.Errorf("object store %s: %w", host, inner)
}
