package blob_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/testenv"
)

// s3Backend runs the conformance test on a real S3 server (SeaweedFS, or
// KILN_TEST_S3_ENDPOINT), with a key prefix so that the prefix handling
// is covered too.
func s3Backend() backend {
	return backend{name: "s3", presigns: true, open: func(t *testing.T) blob.Store {
		srv := testenv.S3(t)
		s, err := blob.NewS3(blob.S3Config{
			Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), Region: srv.Region,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Prefix: "kiln",
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

func TestS3Config(t *testing.T) {
	for _, tc := range []struct {
		cfg     blob.S3Config
		wantErr string
		want    string
	}{
		{cfg: blob.S3Config{Endpoint: "s3.example.com", Bucket: "b"}, want: "s3 https://s3.example.com/b/"},
		{cfg: blob.S3Config{Endpoint: "minio:9000", Bucket: "b", Insecure: true, Prefix: "kiln/"}, want: "s3 http://minio:9000/b/kiln/"},
		{cfg: blob.S3Config{Endpoint: "http://127.0.0.1:8333", Bucket: "b", Prefix: "a/b"}, want: "s3 http://127.0.0.1:8333/b/a/b/"},
		{cfg: blob.S3Config{Endpoint: "https://h", Bucket: "b", Insecure: true}, want: "s3 https://h/b/"},
		{cfg: blob.S3Config{Bucket: "b"}, wantErr: "endpoint and a bucket"},
		{cfg: blob.S3Config{Endpoint: "h"}, wantErr: "endpoint and a bucket"},
		{cfg: blob.S3Config{Endpoint: "ftp://h", Bucket: "b"}, wantErr: "want host"},
		{cfg: blob.S3Config{Endpoint: "http://h/path", Bucket: "b"}, wantErr: "want host"},
		{cfg: blob.S3Config{Endpoint: "h", Bucket: "b", Prefix: "../x"}, wantErr: "prefix"},
		{cfg: blob.S3Config{Endpoint: "h", Bucket: "b", PartSize: 1 << 20}, wantErr: "5 MiB"},
	} {
		s, err := blob.NewS3(tc.cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewS3(%+v) = %v, want error with %q", tc.cfg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewS3(%+v): %v", tc.cfg, err)
			continue
		}
		if s.String() != tc.want {
			t.Errorf("NewS3(%+v) = %s, want %s", tc.cfg, s, tc.want)
		}
	}
}

// TestS3PingAndMissingBucket: Ping reports a missing bucket, wrong
// credentials and an unreachable server; keys live under the prefix.
func TestS3PingAndPrefix(t *testing.T) {
	ctx := context.Background()
	srv := testenv.S3(t)
	bucket := srv.NewBucket(t)
	mk := func(bucket, secret, endpoint string) *blob.S3 {
		s, err := blob.NewS3(blob.S3Config{Endpoint: endpoint, Bucket: bucket, AccessKey: srv.AccessKey, SecretKey: secret, Prefix: "pre"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := mk(bucket, srv.SecretKey, srv.Endpoint).Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := mk("no-such-bucket-kiln", srv.SecretKey, srv.Endpoint).Ping(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Ping of a missing bucket: %v", err)
	}
	if err := mk(bucket, "wrong", srv.Endpoint).Ping(ctx); err == nil {
		t.Error("Ping with a wrong secret succeeded")
	} else if strings.Contains(err.Error(), "wrong") {
		t.Errorf("Ping error shows the secret: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := mk(bucket, srv.SecretKey, "http://127.0.0.1:1").Ping(cctx); err == nil {
		t.Error("Ping of a closed port succeeded")
	}
	s := mk(bucket, srv.SecretKey, srv.Endpoint)
	if err := s.Put(ctx, "artifacts/1/a.zip", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if got := srv.ObjectNames(t, bucket, ""); len(got) != 1 || got[0] != "pre/artifacts/1/a.zip" {
		t.Errorf("objects %q, want pre/artifacts/1/a.zip", got)
	}
	if _, _, err := mk(bucket, srv.SecretKey, srv.Endpoint).Get(ctx, "pre/artifacts/1/a.zip"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("prefix applied twice? %v", err)
	}
}

// TestS3PutStreams: an upload of unknown length (as an artifacts archive
// arrives from a runner) goes to the bucket in parts; the process holds
// about one part at a time, not the archive. 64 MiB go through with 5 MiB
// parts while the heap in use, sampled every few milliseconds, grows by
// less than 32 MiB.
func TestS3PutStreams(t *testing.T) {
	ctx := context.Background()
	srv := testenv.S3(t)
	s, err := blob.NewS3(blob.S3Config{Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	// An io.Reader only (no Seek, no ReadAt, no Len): the upload cannot
	// learn the size or re-read.
	src := struct{ io.Reader }{io.LimitReader(rand.NewChaCha8([32]byte{1}), size)}
	start := time.Now()
	err = s.Put(ctx, "artifacts/1/big.zip", src, -1)
	took := time.Since(start)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(ctx, "artifacts/1/big.zip"); err != nil || info.Size != size {
		t.Fatalf("stored: %+v %v", info, err)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %d MiB for a %d MiB upload (%s)", grew>>20, size>>20, took.Round(time.Millisecond))
	if grew > 32<<20 {
		t.Errorf("heap in use grew by %d MiB during a %d MiB upload: the archive is buffered", grew>>20, size>>20)
	}
}
