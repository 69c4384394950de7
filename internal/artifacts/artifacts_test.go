package artifacts_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/testenv"
)

func stores(t *testing.T) map[string]func(t *testing.T) blob.Store {
	return map[string]func(t *testing.T) blob.Store{
		"dir": func(t *testing.T) blob.Store {
			d, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"s3": func(t *testing.T) blob.Store {
			srv := testenv.S3(t)
			s, err := blob.NewS3(blob.S3Config{Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func read(t *testing.T, s *artifacts.Store, id int64, name string) string {
	t.Helper()
	rc, _, err := s.Open(context.Background(), id, name)
	if err != nil {
		t.Fatalf("Open(%d, %s): %v", id, name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			bl := open(t)
			s := artifacts.New(bl, 10)
			if n, err := s.Save(ctx, 1, "first.zip", strings.NewReader("0123456789")); err != nil || n != 10 {
				t.Fatalf("Save at the limit: %d %v", n, err)
			}
			// Over the limit: refused, the previous archive stays.
			if _, err := s.Save(ctx, 1, "first.zip", strings.NewReader("0123456789A")); !errors.Is(err, artifacts.ErrTooLarge) {
				t.Fatalf("Save over the limit: %v", err)
			}
			if _, err := s.Save(ctx, 1, "other.zip", strings.NewReader(strings.Repeat("x", 100))); !errors.Is(err, artifacts.ErrTooLarge) {
				t.Fatalf("Save over the limit: %v", err)
			}
			if got := read(t, s, 1, "first.zip"); got != "0123456789" {
				t.Fatalf("after refused uploads: %q", got)
			}
			if _, err := s.Stat(ctx, 1, "other.zip"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("a refused upload left an object: %v", err)
			}
			// One archive per job: a new name replaces the old one.
			if _, err := s.Save(ctx, 1, "../../second.zip", strings.NewReader("two")); err != nil {
				t.Fatal(err)
			}
			if got := read(t, s, 1, "second.zip"); got != "two" {
				t.Fatalf("second: %q", got)
			}
			if _, _, err := s.Open(ctx, 1, "first.zip"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("the replaced archive is still there: %v", err)
			}
			if _, err := s.Save(ctx, 22, "a.zip", strings.NewReader("a")); err != nil {
				t.Fatal(err)
			}
			ids, err := s.IDs()
			slices.Sort(ids)
			if err != nil || !slices.Equal(ids, []int64{1, 22}) {
				t.Fatalf("IDs = %v, %v", ids, err)
			}
			if err := s.Delete(1); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteJob(ctx, 1); err != nil {
				t.Fatalf("deleting again: %v", err)
			}
			if ids, _ := s.IDs(); !slices.Equal(ids, []int64{22}) {
				t.Fatalf("IDs after Delete = %v", ids)
			}
			if got := read(t, s, 22, "a.zip"); got != "a" {
				t.Fatalf("another job's archive: %q", got)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"artifacts.zip": "artifacts.zip", "../../x.zip": "x.zip", `C:\a\b.zip`: "b.zip", "": "artifacts.zip",
		"..": "artifacts.zip", "a\x00b": "artifacts.zip", ".blob-tmp-x": "artifacts.zip", strings.Repeat("a", 300): strings.Repeat("a", 200),
	} {
		if got := artifacts.CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// brokenReader is an upload whose client hangs up midway.
type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	b.n--
	p[0] = 'x'
	return 1, nil
}

// TestSaveStoreDown: a Save that fails because the object store is down
// (a stopped S3 server: connection refused; a frozen one: no answer)
// matches blob.ErrUnavailable, so that the runner API answers 503 naming the object
// store; an upload that breaks on the client's side (a request body cut
// short: io.ErrUnexpectedEOF) does not, and stores nothing.
func TestSaveStoreDown(t *testing.T) {
	ctx := context.Background()
	dir, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.SeaweedFS(t)
	s3, err := blob.NewS3(blob.S3Config{Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, StallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]blob.Store{"dir": dir, "s3": s3} {
		s := artifacts.New(st, 1<<20)
		_, err := s.Save(ctx, 1, "a.zip", &brokenReader{n: 10})
		if err == nil || errors.Is(err, blob.ErrUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: Save of a broken upload: %v, want the client's error, not blob.ErrUnavailable", name, err)
		}
		if _, err := s.Stat(ctx, 1, "a.zip"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("%s: a broken upload left an archive: %v", name, err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	stopped, err := blob.NewS3(blob.S3Config{Endpoint: "http://" + closed, Bucket: "kiln", AccessKey: "k", SecretKey: "s", StallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	for name, st := range map[string]blob.Store{"stopped": stopped, "frozen": s3} {
		s := artifacts.New(st, 1<<20)
		start := time.Now()
		_, err := s.Save(ctx, 1, "a.zip", strings.NewReader("PKdata"))
		if !errors.Is(err, blob.ErrUnavailable) {
			t.Fatalf("Save to a %s store: %v, want blob.ErrUnavailable", name, err)
		}
		t.Logf("Save to a %s store failed after %s: %v", name, time.Since(start).Round(time.Millisecond), err)
	}
}
