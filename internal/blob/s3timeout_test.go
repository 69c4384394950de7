package blob_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/testenv"
)

// TestS3StallTimeout: a frozen or stalled S3 server (testenv.StallingHTTP) costs a bounded error,
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
			s, err := blob.NewS3(blob.S3Config{Endpoint: testenv.StallingHTTP(t, tc.mode), Bucket: "bucket", AccessKey: "a", SecretKey: "s", StallTimeout: stall})
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
