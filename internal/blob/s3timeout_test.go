package blob_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
)

// frozenS3 is an "S3 server" that accepts connections and then stops
// answering: "frozen" never answers at all (a SIGSTOPped server: the
// kernel still accepts), "stalled-body" answers a GET's headers and the
// first bytes of a large object, then nothing.
func frozenS3(t *testing.T, mode string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if mode == "stalled-body" {
						switch req.Method {
						case "GET", "HEAD":
							fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: application/octet-stream\r\nETag: \"0123456789abcdef\"\r\nLast-Modified: %s\r\n\r\n", time.Now().UTC().Format(http.TimeFormat))
							if req.Method == "GET" {
								c.Write([]byte(strings.Repeat("x", 100)))
							}
							if req.Method == "HEAD" {
								continue
							}
						}
					}
					<-done
					return
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestS3StallTimeout: a frozen or stalled S3 server costs a bounded error,
// never a hung call (minio-go alone waits a minute for headers, retries
// ten times, and waits for body bytes forever).
func TestS3StallTimeout(t *testing.T) {
	const stall = 300 * time.Millisecond
	const bound = 5 * time.Second // a few retries of stall each
	for _, tc := range []struct {
		mode, op string
	}{
		{"frozen", "put"}, {"frozen", "stat"}, {"frozen", "get"}, {"frozen", "ping"},
		{"stalled-body", "get"},
	} {
		t.Run(tc.mode+"/"+tc.op, func(t *testing.T) {
			s, err := blob.NewS3(blob.S3Config{Endpoint: frozenS3(t, tc.mode), Bucket: "bucket", AccessKey: "a", SecretKey: "s", StallTimeout: stall})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				switch tc.op {
				case "put":
					done <- s.Put(ctx, "k", strings.NewReader("data"), 4)
				case "stat":
					_, err := s.Stat(ctx, "k")
					done <- err
				case "ping":
					done <- s.Ping(ctx)
				case "get":
					rc, _, err := s.Get(ctx, "k")
					if err == nil {
						_, err = io.ReadAll(rc)
						rc.Close()
					}
					done <- err
				}
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error from a server that never answers")
				}
				if d := time.Since(start); d > bound {
					t.Errorf("took %s, want under %s", d, bound)
				}
				t.Logf("%s after %s", err, time.Since(start).Round(time.Millisecond))
			case <-time.After(3 * bound):
				t.Fatalf("%s hung for %s against a %s server", tc.op, 3*bound, tc.mode)
			}
		})
	}
}
