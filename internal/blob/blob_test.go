package blob_test

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
)

// backend is one Store implementation under the conformance test.
type backend struct {
	name string
	// open returns a fresh, empty store (or skips the test).
	open func(t *testing.T) blob.Store
	// presigns says whether PresignGet must give a URL.
	presigns bool
}

func backends() []backend {
	return []backend{
		{name: "dir", open: func(t *testing.T) blob.Store {
			d, err := blob.NewDir(filepath.Join(t.TempDir(), "objects"))
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
		s3Backend(),
	}
}

// pattern is a deterministic reader of n bytes that never holds them all.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x*7 + x>>11)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// failing yields n bytes, then an error.
type failing struct {
	n   int
	err error
}

func (f *failing) Read(b []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(b), f.n)
	for i := range k {
		b[i] = 'x'
	}
	f.n -= k
	return k, nil
}

func checksum(t *testing.T, r io.Reader) (int64, uint32) {
	t.Helper()
	h := crc32.NewIEEE()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	return n, h.Sum32()
}

func get(t *testing.T, s blob.Store, key string) string {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(b)) {
		t.Fatalf("Get(%q): Info.Size %d, read %d bytes", key, info.Size, len(b))
	}
	return string(b)
}

func TestConformance(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			s := be.open(t)
			cases := []struct {
				name string
				run  func(t *testing.T)
			}{
				{"put get stat", func(t *testing.T) {
					before := time.Now().Add(-time.Minute)
					if err := s.Put(ctx, "artifacts/1/artifacts.zip", strings.NewReader("hello"), 5); err != nil {
						t.Fatal(err)
					}
					if got := get(t, s, "artifacts/1/artifacts.zip"); got != "hello" {
						t.Fatalf("got %q", got)
					}
					info, err := s.Stat(ctx, "artifacts/1/artifacts.zip")
					if err != nil || info.Size != 5 || info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
						t.Fatalf("Stat = %+v, %v", info, err)
					}
				}},
				{"put replaces", func(t *testing.T) {
					for _, body := range []string{"first version", "second"} {
						if err := s.Put(ctx, "replace/k", strings.NewReader(body), -1); err != nil {
							t.Fatal(err)
						}
						if got := get(t, s, "replace/k"); got != body {
							t.Fatalf("got %q, want %q", got, body)
						}
					}
				}},
				{"empty object", func(t *testing.T) {
					if err := s.Put(ctx, "empty", strings.NewReader(""), 0); err != nil {
						t.Fatal(err)
					}
					if got := get(t, s, "empty"); got != "" {
						t.Fatalf("got %q", got)
					}
				}},
				{"large object of unknown size streams", func(t *testing.T) {
					// Larger than the S3 part size: a multipart upload.
					const n = 17<<20 + 12345
					_, want := checksum(t, &pattern{n: n})
					if err := s.Put(ctx, "big/blob", &pattern{n: n}, -1); err != nil {
						t.Fatal(err)
					}
					rc, info, err := s.Get(ctx, "big/blob")
					if err != nil {
						t.Fatal(err)
					}
					defer rc.Close()
					gotN, got := checksum(t, rc)
					if info.Size != n || gotN != n || got != want {
						t.Fatalf("size %d/%d crc %x, want %d %x", info.Size, gotN, got, n, want)
					}
				}},
				{"missing key", func(t *testing.T) {
					if _, _, err := s.Get(ctx, "nope/missing"); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("Get: %v, want ErrNotFound", err)
					}
					if _, err := s.Stat(ctx, "nope/missing"); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("Stat: %v, want ErrNotFound", err)
					}
					if err := s.Delete(ctx, "nope/missing"); err != nil {
						t.Fatalf("Delete of a missing key: %v", err)
					}
				}},
				{"delete", func(t *testing.T) {
					if err := s.Put(ctx, "del/a", strings.NewReader("a"), 1); err != nil {
						t.Fatal(err)
					}
					if err := s.Put(ctx, "del/b", strings.NewReader("b"), 1); err != nil {
						t.Fatal(err)
					}
					if err := s.Delete(ctx, "del/a"); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Stat(ctx, "del/a"); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("Stat after Delete: %v", err)
					}
					if got := get(t, s, "del/b"); got != "b" {
						t.Fatalf("sibling: %q", got)
					}
				}},
				{"failed put keeps the previous object", func(t *testing.T) {
					if err := s.Put(ctx, "keep/k", strings.NewReader("old"), 3); err != nil {
						t.Fatal(err)
					}
					boom := errors.New("boom")
					// io.ErrUnexpectedEOF is what a request body (a
					// multipart part) returns when the client hangs up.
					for _, rerr := range []error{boom, io.ErrUnexpectedEOF} {
						if err := s.Put(ctx, "keep/k", &failing{n: 100, err: rerr}, -1); err == nil {
							t.Fatalf("Put with a reader failing with %v succeeded", rerr)
						}
					}
					if err := s.Put(ctx, "keep/k", strings.NewReader("short"), 10); err == nil {
						t.Fatal("Put with fewer bytes than size succeeded")
					}
					cctx, cancel := context.WithCancel(ctx)
					cancel()
					if err := s.Put(cctx, "keep/k", strings.NewReader("new"), 3); err == nil {
						t.Fatal("Put with a canceled context succeeded")
					}
					if got := get(t, s, "keep/k"); got != "old" {
						t.Fatalf("got %q after failed puts", got)
					}
					if _, err := s.Stat(ctx, "keep/new"); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("Stat: %v", err)
					}
					for _, rerr := range []error{boom, io.ErrUnexpectedEOF} {
						if err := s.Put(ctx, "keep/new", &failing{n: 10, err: rerr}, -1); err == nil {
							t.Fatalf("Put with a reader failing with %v succeeded", rerr)
						}
					}
					if _, err := s.Stat(ctx, "keep/new"); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("a failed Put left an object: %v", err)
					}
				}},
				{"invalid keys", func(t *testing.T) {
					for _, k := range []string{"", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\x00b", `a\..\b`, ".blob-tmp-1"} {
						if err := s.Put(ctx, k, strings.NewReader("x"), 1); !errors.Is(err, blob.ErrBadKey) {
							t.Errorf("Put(%q) = %v, want ErrBadKey", k, err)
						}
						if _, _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrBadKey) {
							t.Errorf("Get(%q) = %v, want ErrBadKey", k, err)
						}
						if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrBadKey) {
							t.Errorf("Stat(%q) = %v, want ErrBadKey", k, err)
						}
						if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrBadKey) {
							t.Errorf("Delete(%q) = %v, want ErrBadKey", k, err)
						}
						if _, _, err := s.PresignGet(ctx, k, time.Minute, "x"); !errors.Is(err, blob.ErrBadKey) {
							t.Errorf("PresignGet(%q) = %v, want ErrBadKey", k, err)
						}
					}
				}},
				{"list", func(t *testing.T) {
					for _, k := range []string{"list/1/a.zip", "list/1/b", "list/2/c", "list/10/d", "listx"} {
						if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k))); err != nil {
							t.Fatal(err)
						}
					}
					l, ok := s.(blob.Lister)
					if !ok {
						t.Fatal("store is not a Lister")
					}
					for _, tc := range []struct {
						prefix string
						want   []string
					}{
						{"list/", []string{"list/1/a.zip", "list/1/b", "list/10/d", "list/2/c"}},
						{"list/1/", []string{"list/1/a.zip", "list/1/b"}},
						{"list/1", []string{"list/1/a.zip", "list/1/b", "list/10/d"}},
						{"list/3/", nil},
					} {
						var got []string
						err := l.List(ctx, tc.prefix, func(k string, info blob.Info) error {
							if info.Size != int64(len(k)) {
								t.Errorf("List %s: size %d", k, info.Size)
							}
							got = append(got, k)
							return nil
						})
						slices.Sort(got)
						if err != nil || !slices.Equal(got, tc.want) {
							t.Errorf("List(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
						}
					}
					stop := errors.New("stop")
					if err := l.List(ctx, "list/", func(string, blob.Info) error { return stop }); !errors.Is(err, stop) {
						t.Errorf("List does not return fn's error: %v", err)
					}
				}},
				{"presign", func(t *testing.T) {
					body := "presigned body"
					if err := s.Put(ctx, "presign/a b.zip", strings.NewReader(body), int64(len(body))); err != nil {
						t.Fatal(err)
					}
					url, ok, err := s.PresignGet(ctx, "presign/a b.zip", time.Minute, `my "file".zip`)
					if err != nil {
						t.Fatal(err)
					}
					if ok != be.presigns {
						t.Fatalf("PresignGet ok = %v, want %v", ok, be.presigns)
					}
					if !ok {
						return
					}
					resp, err := http.Get(url)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 || string(b) != body {
						t.Fatalf("GET presigned: %d %q", resp.StatusCode, b)
					}
					if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, "file") {
						t.Errorf("Content-Disposition %q", cd)
					}
				}},
				{"ping", func(t *testing.T) {
					if err := s.Ping(ctx); err != nil {
						t.Fatal(err)
					}
				}},
			}
			for _, c := range cases {
				t.Run(c.name, c.run)
			}
		})
	}
}

func TestDirLayoutAndCleanup(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := blob.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "artifacts/12/artifacts.zip", bytes.NewReader([]byte("zip")), 3); err != nil {
		t.Fatal(err)
	}
	// The key is the path under the root: existing data dirs keep working.
	if b, err := os.ReadFile(filepath.Join(root, "artifacts", "12", "artifacts.zip")); err != nil || string(b) != "zip" {
		t.Fatalf("file: %q %v", b, err)
	}
	rc, _, err := d.Get(ctx, "artifacts/12/artifacts.zip")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(io.ReadSeeker); !ok {
		t.Error("Dir.Get does not return an io.ReadSeeker (ranges need it)")
	}
	rc.Close()
	// No temporary files are left next to it.
	ents, _ := os.ReadDir(filepath.Join(root, "artifacts", "12"))
	if len(ents) != 1 {
		t.Fatalf("entries %v", ents)
	}
	if err := d.Delete(ctx, "artifacts/12/artifacts.zip"); err != nil {
		t.Fatal(err)
	}
	// Emptied directories go, the root stays.
	if _, err := os.Stat(filepath.Join(root, "artifacts")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty parent left: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root removed: %v", err)
	}
	// A directory is not an object.
	os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o700)
	if _, err := d.Stat(ctx, "dir/sub"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(dir) = %v", err)
	}
	if err := d.Put(ctx, "file", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "file/under"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(file/under) = %v", err)
	}
	// Ping fails when the root is gone.
	os.RemoveAll(root)
	if err := d.Ping(ctx); err == nil {
		t.Error("Ping succeeded without a root")
	}
}

// TestMigrate copies a Dir into every backend: copies what matches,
// verifies, skips what is already there, copies again what differs, and
// never touches the source.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			src, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]string{"artifacts/1/a.zip": "zip one", "artifacts/2/b.zip": "zip two", "traces/1.log": "log", "traces/1.cut": "x", "other/x": "y"}
			for k, v := range files {
				if err := src.Put(ctx, k, strings.NewReader(v), -1); err != nil {
					t.Fatal(err)
				}
			}
			dst := be.open(t)
			keep := func(k string) bool { return !strings.HasSuffix(k, ".cut") }
			var events []string
			report := func(e blob.MigrateEvent) { events = append(events, e.Action+" "+e.Key) }
			st, err := blob.Migrate(ctx, src, dst, []string{"artifacts/", "traces/"}, keep, report)
			if err != nil || st != (blob.MigrateStats{Copied: 3, Bytes: 17}) {
				t.Fatalf("first run: %+v %v %q", st, err, events)
			}
			for _, k := range []string{"artifacts/1/a.zip", "artifacts/2/b.zip", "traces/1.log"} {
				if got := get(t, dst, k); got != files[k] {
					t.Errorf("%s: %q", k, got)
				}
			}
			for _, k := range []string{"traces/1.cut", "other/x"} {
				if _, err := dst.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("%s copied: %v", k, err)
				}
			}
			// Idempotent; an object of another size (an interrupted or
			// older copy) and a missing one are copied again.
			if err := dst.Put(ctx, "artifacts/2/b.zip", strings.NewReader("part"), -1); err != nil {
				t.Fatal(err)
			}
			if err := dst.Delete(ctx, "traces/1.log"); err != nil {
				t.Fatal(err)
			}
			events = nil
			st, err = blob.Migrate(ctx, src, dst, []string{"artifacts/", "traces/"}, keep, report)
			slices.Sort(events)
			if err != nil || st != (blob.MigrateStats{Copied: 2, Skipped: 1, Bytes: 10}) {
				t.Fatalf("second run: %+v %v %q", st, err, events)
			}
			if want := []string{"copied artifacts/2/b.zip", "copied traces/1.log", "skipped artifacts/1/a.zip"}; !slices.Equal(events, want) {
				t.Errorf("events %q, want %q", events, want)
			}
			if got := get(t, dst, "artifacts/2/b.zip"); got != "zip two" {
				t.Errorf("recopied: %q", got)
			}
			st, err = blob.Migrate(ctx, src, dst, []string{"artifacts/", "traces/"}, keep, nil)
			if err != nil || st != (blob.MigrateStats{Skipped: 3}) {
				t.Fatalf("third run: %+v %v", st, err)
			}
			for k, v := range files {
				if got := get(t, src, k); got != v {
					t.Errorf("source %s changed: %q", k, got)
				}
			}
		})
	}
}
