package traces

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

// eachDB runs fn against a real SQLite file and the real PostgreSQL.
func eachDB(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		st, err := store.Open(context.Background(), dsn, nil, store.Options{Schema: testenv.UniqueName("kiln_traces")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.DropSchema(context.Background()); st.Close() })
		fn(t, st)
	})
}

// newStore is a traces.Store over st with its own object directory (a
// replica's data dir) and the given chunk size.
func newStore(t *testing.T, st *store.Store, limit, chunk int64) *Store {
	t.Helper()
	objs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, objs, limit)
	if chunk > 0 {
		s.chunk = chunk
	}
	return s
}

// newJob inserts a job (with its user, project and pipeline) in status.
func newJob(t *testing.T, st *store.Store, status string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	name := testenv.UniqueName("u")
	u := &store.User{Username: name, Name: "U", Email: name + "@example.com"}
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
		t.Fatal(err)
	}
	ns, err := st.UserNamespace(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(ctx, func(tx *store.Tx) error {
		p := &store.Project{NamespaceID: ns.ID, Name: "app", Path: "app", FullPath: u.Username + "/app", Visibility: "private", CreatorID: u.ID}
		if err := tx.CreateProject(ctx, p); err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID, Ref: "main", SHA: strings.Repeat("a", 40), Status: "running", Source: "push", UserID: u.ID}
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		j := &store.Job{PipelineID: pl.ID, ProjectID: p.ID, Name: "build", Stage: "test", Status: status, When: "on_success"}
		if err := tx.InsertJob(ctx, j); err != nil {
			return err
		}
		id = j.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fileTrace is the previous implementation's semantics (an append-only
// file truncated to the range start), the reference the chunks must match.
type fileTrace struct {
	data  []byte
	limit int64
	cut   int64 // -1 until cut
}

func (f *fileTrace) append(start int64, body []byte) (int64, error) {
	if f.cut >= 0 {
		if start > f.cut {
			return 0, &ErrRange{Size: f.cut}
		}
		f.cut = start + int64(len(body))
		return f.cut, nil
	}
	if start > int64(len(f.data)) {
		return 0, &ErrRange{Size: int64(len(f.data))}
	}
	end := start + int64(len(body))
	if end > f.limit {
		keep := max(f.limit-start, 0)
		f.data = append(append(f.data[:min(start, f.limit)], body[:keep]...), cutNote(f.limit)...)
		f.cut = end
		return end, nil
	}
	f.data = append(f.data[:start], body...)
	return end, nil
}

func TestAppendSemantics(t *testing.T) {
	type op struct {
		start int64
		body  string
		n     int64 // returned length
		rng   int64 // >0: an *ErrRange with this Size (0-sized ranges use -1)
	}
	cases := []struct {
		name  string
		chunk int64
		limit int64
		ops   []op
		want  string
	}{
		{"append", 4, 100, []op{{0, "hello", 5, 0}, {5, " world", 11, 0}}, "hello world"},
		{"resend overlaps: truncate then append", 4, 100, []op{{0, "hello", 5, 0}, {3, "XYZ", 6, 0}}, "helXYZ"},
		{"gap is a range error, nothing stored", 4, 100, []op{{0, "hello", 5, 0}, {10, "abc", 0, 5}}, "hello"},
		{"first write beyond zero", 4, 100, []op{{3, "abc", 0, -1}}, ""},
		{"truncate to a chunk boundary", 4, 100, []op{{0, "0123456789", 10, 0}, {4, "", 4, 0}}, "0123"},
		{"truncate to zero", 4, 100, []op{{0, "0123456789", 10, 0}, {0, "", 0, 0}, {0, "ab", 2, 0}}, "ab"},
		{"rewrite inside an earlier chunk", 4, 100, []op{{0, "0123456789ab", 12, 0}, {2, "xy", 4, 0}}, "01xy"},
		{"exact chunk multiples", 4, 100, []op{{0, "0123", 4, 0}, {4, "4567", 8, 0}, {8, "89", 10, 0}}, "0123456789"},
		{"empty body at the end", 4, 100, []op{{0, "abc", 3, 0}, {3, "", 3, 0}}, "abc"},
		{"cut keeps offsets moving", 4, 10, []op{{0, "0123456", 7, 0}, {7, "789abcdef", 16, 0}, {16, "QQQQ", 20, 0}, {25, "x", 0, 20}, {18, "zz", 20, 0}}, "0123456789" + cutNote(10)},
		{"cut by the first write", 4, 3, []op{{0, "abcdef", 6, 0}}, "abc" + cutNote(3)},
		{"big chunks", ChunkSize, 100, []op{{0, "hello", 5, 0}, {5, "!", 6, 0}}, "hello!"},
	}
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				s := newStore(t, st, c.limit, c.chunk)
				id := newJob(t, st, "running")
				for i, o := range c.ops {
					n, err := s.Append(ctx, id, o.start, []byte(o.body))
					var re *ErrRange
					switch {
					case o.rng != 0:
						want := max(o.rng, 0)
						if !errors.As(err, &re) || re.Size != want {
							t.Fatalf("op %d: %v, want ErrRange{%d}", i, err, want)
						}
					case err != nil || n != o.n:
						t.Fatalf("op %d: %d, %v; want %d", i, n, err, o.n)
					}
				}
				got, err := s.ReadAll(ctx, id)
				if err != nil || string(got) != c.want {
					t.Fatalf("stored %q (%v), want %q", got, err, c.want)
				}
				if sz := s.Size(ctx, id); sz != int64(len(c.want)) {
					t.Fatalf("size %d, want %d", sz, len(c.want))
				}
			})
		}
	})
}

// TestAppendMatchesFileSemantics replays random appends (resends, gaps,
// truncations, the limit) against the file implementation's semantics.
func TestAppendMatchesFileSemantics(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for seed := range uint64(6) {
			r := rand.New(rand.NewPCG(seed, 7))
			limit := int64(200 + r.IntN(400))
			s := newStore(t, st, limit, int64(1+r.IntN(64)))
			id := newJob(t, st, "running")
			ref := &fileTrace{limit: limit, cut: -1}
			sent := int64(0)
			for i := range 80 {
				start := sent
				switch r.IntN(6) {
				case 0:
					start = max(sent-int64(r.IntN(50)), 0) // resend
				case 1:
					start = sent + int64(1+r.IntN(5)) // gap
				}
				body := bytes.Repeat([]byte{byte('a' + i%26)}, r.IntN(90))
				wn, werr := ref.append(start, body)
				n, err := s.Append(ctx, id, start, body)
				if (werr == nil) != (err == nil) || n != wn {
					t.Fatalf("seed %d op %d: got %d,%v want %d,%v", seed, i, n, err, wn, werr)
				}
				var re, wre *ErrRange
				if errors.As(werr, &wre) && (!errors.As(err, &re) || re.Size != wre.Size) {
					t.Fatalf("seed %d op %d: range %v want %v", seed, i, err, werr)
				}
				if err == nil {
					sent = n
				}
				if s.Cut(ctx, id) != (ref.cut >= 0) {
					t.Fatalf("seed %d op %d: cut %v", seed, i, s.Cut(ctx, id))
				}
			}
			got, _ := s.ReadAll(ctx, id)
			if !bytes.Equal(got, ref.data) {
				t.Fatalf("seed %d: stored %q\nwant %q", seed, got, ref.data)
			}
			for _, off := range []int64{0, 1, int64(len(got)) / 2, int64(len(got)) - 1, int64(len(got)), int64(len(got)) + 5} {
				data, size, err := s.ReadAt(ctx, id, off, 37)
				want := got[min(max(off, 0), int64(len(got))):min(off+37, int64(len(got)))]
				if err != nil || size != int64(len(got)) || !bytes.Equal(data, want) {
					t.Fatalf("seed %d ReadAt(%d): %q %d %v, want %q", seed, off, data, size, err, want)
				}
			}
		}
	})
}

// TestAnotherReplicaReadsTheLiveLog: a second Store on the same database
// (another replica, with its own data dir) reads what the first stored.
func TestAnotherReplicaReadsTheLiveLog(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newStore(t, st, 0, 0), newStore(t, st, 0, 0)
		id := newJob(t, st, "running")
		line := []byte(strings.Repeat("x", 99) + "\n")
		var want []byte
		for range 3000 { // 300 KB: three chunks
			want = append(want, line...)
		}
		if _, err := a.Append(ctx, id, 0, want[:200000]); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Append(ctx, id, 200000, want[200000:]); err != nil {
			t.Fatal(err)
		}
		got, err := b.ReadAll(ctx, id)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("replica b read %d bytes (%v), want %d", len(got), err, len(want))
		}
		data, size, err := b.ReadAt(ctx, id, 131000, 1000)
		if err != nil || size != int64(len(want)) || !bytes.Equal(data, want[131000:132000]) {
			t.Fatalf("ReadAt across a chunk boundary: %d bytes, size %d, %v", len(data), size, err)
		}
		sum, _ := b.Checksum(ctx, id)
		if sum2, _ := a.Checksum(ctx, id); sum != sum2 || sum == "crc32:00000000" {
			t.Fatalf("checksums %s %s", sum, sum2)
		}
	})
}

func chunkCount(t *testing.T, st *store.Store, id int64) int {
	t.Helper()
	cs, err := st.TraceChunks(context.Background(), id, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// TestArchive: a finished job's chunks become one object and are deleted;
// reads then come from the object, appends are refused.
func TestArchive(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		s := newStore(t, st, 0, 16)
		running, done := newJob(t, st, "running"), newJob(t, st, "success")
		want := []byte(strings.Repeat("line of log\n", 20))
		for _, id := range []int64{running, done} {
			if _, err := s.Append(ctx, id, 0, want); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ArchivePass(ctx); err != nil {
			t.Fatal(err)
		}
		if n := chunkCount(t, st, running); n == 0 {
			t.Fatal("a running job's log was archived")
		}
		if n := chunkCount(t, st, done); n != 0 {
			t.Fatalf("%d chunks left after archiving", n)
		}
		rc, _, err := s.objects.Get(ctx, Key(done))
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(obj, want) {
			t.Fatalf("object %q", obj)
		}
		got, err := s.ReadAll(ctx, done)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("archived read %q %v", got, err)
		}
		data, size, err := s.ReadAt(ctx, done, 12, 11)
		if err != nil || size != int64(len(want)) || string(data) != "line of log" {
			t.Fatalf("archived ReadAt %q %d %v", data, size, err)
		}
		if _, err := s.Append(ctx, done, int64(len(want)), []byte("late")); !errors.Is(err, ErrArchived) {
			t.Fatalf("append after archive: %v", err)
		}
		if err := s.Delete(done); err != nil {
			t.Fatal(err)
		}
		if _, err := s.objects.Stat(ctx, Key(done)); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("object after delete: %v", err)
		}
		if got, _ := s.ReadAll(ctx, done); len(got) != 0 {
			t.Fatalf("deleted log reads %q", got)
		}
	})
}

// TestArchiveCrashBetweenPutAndDelete: an archive that stops after the
// object was written (a crash) leaves the chunks, which still read the
// same; the next pass finishes it.
func TestArchiveCrashBetweenPutAndDelete(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		s := newStore(t, st, 0, 8)
		id := newJob(t, st, "failed")
		want := []byte(strings.Repeat("0123456789", 7))
		if _, err := s.Append(ctx, id, 0, want); err != nil {
			t.Fatal(err)
		}
		crash := errors.New("killed")
		s.afterPut = func(int64) error { return crash }
		if err := s.ArchivePass(ctx); !errors.Is(err, crash) {
			t.Fatalf("pass: %v", err)
		}
		if _, err := s.objects.Stat(ctx, Key(id)); err != nil {
			t.Fatalf("object not written before the crash: %v", err)
		}
		if n := chunkCount(t, st, id); n != 9 {
			t.Fatalf("%d chunks after the crash, want 9", n)
		}
		if got, _ := s.ReadAll(ctx, id); !bytes.Equal(got, want) {
			t.Fatalf("read after the crash %q", got)
		}
		s.afterPut = nil
		if err := s.ArchivePass(ctx); err != nil {
			t.Fatal(err)
		}
		if n := chunkCount(t, st, id); n != 0 {
			t.Fatalf("%d chunks after the next pass", n)
		}
		if got, _ := s.ReadAll(ctx, id); !bytes.Equal(got, want) {
			t.Fatalf("read after archiving %q", got)
		}
	})
}

// TestLegacyFileLogs: a log an older version kept at
// <data-dir>/traces/<id>.log reads through the data dir's blob store.
func TestLegacyFileLogs(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		dataDir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dataDir, "traces"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dataDir, "traces", "4242.log"), []byte("old log\n"), 0o600)
		os.WriteFile(filepath.Join(dataDir, "traces", "4243.cut"), []byte("9"), 0o600)
		objs, err := blob.NewDir(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		s := New(st, objs, 0)
		if got, err := s.ReadAll(ctx, 4242); err != nil || string(got) != "old log\n" {
			t.Fatalf("legacy log %q %v", got, err)
		}
		if data, size, err := s.ReadAt(ctx, 4242, 4, 100); err != nil || size != 8 || string(data) != "log\n" {
			t.Fatalf("legacy ReadAt %q %d %v", data, size, err)
		}
		ids, err := s.IDs()
		if err != nil || fmt.Sprint(ids) != "[4242 4243]" && fmt.Sprint(ids) != "[4243 4242]" {
			t.Fatalf("IDs %v %v", ids, err)
		}
		if err := s.Delete(4242); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "traces", "4242.log")); !os.IsNotExist(err) {
			t.Fatalf("legacy log not deleted: %v", err)
		}
	})
}

// TestTraceLimitCuts is runnerapi's test of the file implementation, kept
// as it was against the chunks.
func TestTraceLimitCuts(t *testing.T) {
	eachDB(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		tr := newStore(t, st, 10, 4)
		id := newJob(t, st, "running")
		if n, err := tr.Append(ctx, id, 0, []byte("0123456")); err != nil || n != 7 {
			t.Fatal(n, err)
		}
		if n, err := tr.Append(ctx, id, 7, []byte("789abcdef")); err != nil || n != 16 {
			t.Fatal(n, err)
		}
		// Offsets keep moving after the cut; nothing more is stored.
		if n, err := tr.Append(ctx, id, 16, []byte("QQQQ")); err != nil || n != 20 {
			t.Fatal(n, err)
		}
		var re *ErrRange
		if _, err := tr.Append(ctx, id, 25, []byte("x")); !errors.As(err, &re) || re.Size != 20 {
			t.Fatal(err)
		}
		b, _ := tr.ReadAll(ctx, id)
		if !strings.HasPrefix(string(b), "0123456789") || !strings.Contains(string(b), "exceeded limit") || strings.Contains(string(b), "QQQQ") {
			t.Fatalf("%q", b)
		}
	})
}
