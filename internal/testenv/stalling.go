package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// StallingHTTP starts a loopback HTTP server that accepts connections and
// then stops answering, and returns its base URL (http://127.0.0.1:port):
// mode "frozen" never answers at all (a SIGSTOPped server: the kernel
// still accepts), "stalled-body" answers a GET or HEAD with the headers of
// a 1,000,000-byte object and a GET with its first 100 bytes, then
// nothing. Connections are held until the test ends.
func StallingHTTP(t testing.TB, mode string) string {
	t.Helper()
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
