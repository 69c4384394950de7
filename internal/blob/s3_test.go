package blob_test

import (
	"context"
	"errors"
	"strings"
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
