// Package traces stores job logs. While a job runs its log lives in the
// database as fixed-size chunks (store.TraceChunk), so that every replica
// of a server sharing that database reads it, as GitLab's incremental
// logging does; once the job finished, the archiver copies the chunks to
// one object, traces/<job id>.log, in the blob store and deletes them.
// Logs written by versions that kept them as files under
// <data-dir>/traces/<id>.log read as archived objects: the default blob
// store is the data dir itself, with the same key layout.
package traces

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/store"
)

// DefaultLimit is the size after which a trace is cut.
const DefaultLimit = 100 << 20

// ChunkSize is the size of a live log's chunks: an append rewrites at most
// the last, partial chunk and inserts new ones (GitLab's 128 KiB).
const ChunkSize = 128 << 10

// ErrRange reports a write that starts beyond the stored length; Size holds
// the length the writer should resume from.
type ErrRange struct{ Size int64 }

func (e *ErrRange) Error() string { return fmt.Sprintf("trace range starts beyond %d bytes", e.Size) }

// ErrArchived reports an append to a log that was archived (its job
// finished): nothing is written.
var ErrArchived = errors.New("trace is archived: the job has finished")

// Store keeps traces: live ones in the database, finished ones in a blob
// store.
type Store struct {
	db      *store.Store
	objects blob.Store
	limit   int64
	chunk   int64
	locks   [64]sync.Mutex
	// afterPut, when set (tests), runs between an archive's Put and the
	// deletion of the chunks; an error stops the archive there, as a crash
	// would.
	afterPut func(jobID int64) error
}

// New returns a Store keeping live logs in db and finished ones in
// objects; limit ≤ 0 means DefaultLimit.
func New(db *store.Store, objects blob.Store, limit int64) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{db: db, objects: objects, limit: limit, chunk: ChunkSize}
}

// Limit is the configured size limit.
func (s *Store) Limit() int64 { return s.limit }

// Key is the blob key of a job's archived log.
func Key(id int64) string { return "traces/" + strconv.FormatInt(id, 10) + ".log" }

// cutKey is where versions that kept logs as files marked a cut log.
func cutKey(id int64) string { return "traces/" + strconv.FormatInt(id, 10) + ".cut" }

// lock serialises this process's appends to one log; the row lock in
// LockTrace does it between replicas.
func (s *Store) lock(id int64) func() {
	m := &s.locks[uint64(id)%uint64(len(s.locks))]
	m.Lock()
	return m.Unlock
}

func cutNote(limit int64) string {
	return fmt.Sprintf("\n\x1b[31;1mJob's log exceeded limit of %d bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n", limit)
}

// Append writes body at offset start: the stored trace is truncated to start
// and body appended, as GitLab does, so that a runner re-sending a chunk
// after a lost answer does not duplicate it. It returns the length the
// runner should consider sent. A start beyond that length is an *ErrRange.
// A log that hit the limit stores the part below it and a note saying so,
// then nothing more, while the runner's offsets keep moving.
func (s *Store) Append(ctx context.Context, id int64, start int64, body []byte) (int64, error) {
	if start < 0 {
		return 0, errors.New("negative offset")
	}
	defer s.lock(id)()
	var sent int64
	err := s.db.Write(ctx, func(tx *store.Tx) error {
		m, err := tx.LockTrace(ctx, id)
		if err != nil {
			return err
		}
		if m.Archived {
			return ErrArchived
		}
		if m.CutSize >= 0 {
			// Already cut: keep the runner's offsets moving, store nothing.
			if start > m.CutSize {
				return &ErrRange{Size: m.CutSize}
			}
			sent = start + int64(len(body))
			return tx.SetTrace(ctx, id, m.Size, sent)
		}
		if start > m.Size {
			return &ErrRange{Size: m.Size}
		}
		end := start + int64(len(body))
		at, data, cut := start, body, int64(-1)
		if end > s.limit {
			keep := max(s.limit-start, 0)
			at = min(start, s.limit)
			data = append(body[:keep:keep], cutNote(s.limit)...)
			cut = end
		}
		if err := s.writeAt(ctx, tx, id, m.Size, at, data); err != nil {
			return err
		}
		sent = end
		return tx.SetTrace(ctx, id, at+int64(len(data)), cut)
	})
	if err != nil {
		return 0, err
	}
	return sent, nil
}

// writeAt truncates a live log of length size to at and appends data:
// the chunk holding at is rewritten (keeping its bytes before at), the
// chunks after it are replaced.
func (s *Store) writeAt(ctx context.Context, tx *store.Tx, id, size, at int64, data []byte) error {
	idx, off := at/s.chunk, at%s.chunk
	if at < size {
		if err := tx.DeleteTraceChunksFrom(ctx, id, idx+1); err != nil {
			return err
		}
	}
	n := min(int64(len(data)), s.chunk-off)
	switch {
	case off > 0:
		ok, err := tx.ExtendTraceChunk(ctx, id, idx, off, data[:n])
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("trace %d: chunk %d is missing or shorter than %d bytes", id, idx, off)
		}
	case n > 0:
		if err := tx.PutTraceChunk(ctx, id, idx, data[:n]); err != nil {
			return err
		}
	case at < size:
		if err := tx.DeleteTraceChunksFrom(ctx, id, idx); err != nil {
			return err
		}
	}
	data = data[n:]
	for len(data) > 0 {
		idx++
		n := min(int64(len(data)), s.chunk)
		if err := tx.PutTraceChunk(ctx, id, idx, data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// meta returns a live log's row; ok is false when the log is archived (or
// predates the database chunks, or does not exist).
func (s *Store) meta(ctx context.Context, id int64) (store.TraceMeta, bool, error) {
	m, err := s.db.TraceMeta(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	return m, !m.Archived, nil
}

// Size returns the stored length of a trace (0 if none).
func (s *Store) Size(ctx context.Context, id int64) int64 {
	_, size, _ := s.ReadAt(ctx, id, 0, 0)
	return size
}

// Cut reports whether a trace hit the size limit.
func (s *Store) Cut(ctx context.Context, id int64) bool {
	m, live, err := s.meta(ctx, id)
	if err != nil {
		return false
	}
	if live {
		return m.CutSize >= 0
	}
	_, err = s.objects.Stat(ctx, cutKey(id))
	return err == nil
}

// Checksum is the runner protocol's "crc32:%08x" of the stored trace.
func (s *Store) Checksum(ctx context.Context, id int64) (string, error) {
	rc, _, err := s.Open(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return fmt.Sprintf("crc32:%08x", h.Sum32()), nil
}

// Open returns the trace for reading, streamed (live while the job runs,
// bounded to its size at open time so that a reader sees a consistent
// prefix while the runner appends); a job with no output reads as empty.
// An archived log the object store cannot give is an error matching
// blob.ErrUnavailable.
func (s *Store) Open(ctx context.Context, id int64) (io.ReadCloser, int64, error) {
	m, live, err := s.meta(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if !live {
		rc, info, err := s.objects.Get(ctx, Key(id))
		if errors.Is(err, blob.ErrNotFound) {
			if m.Archived {
				return nil, 0, fmt.Errorf("trace %d: archived log is missing: %w", id, err)
			}
			return io.NopCloser(strings.NewReader("")), 0, nil
		}
		if err != nil {
			return nil, 0, blob.Unavailable(ctx, err)
		}
		return rc, info.Size, nil
	}
	return io.NopCloser(&liveReader{ctx: ctx, s: s, id: id, size: m.Size}), m.Size, nil
}

// liveReader streams a live log a few chunks at a time.
type liveReader struct {
	ctx    context.Context
	s      *Store
	id     int64
	off    int64
	size   int64
	buf    []byte
	strict bool // chunks only, no fallback to the object (the archiver's own read)
}

// liveBatch is how much one query of a live log returns.
const liveBatch = 8 * ChunkSize

func (r *liveReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		want := min(r.size-r.off, liveBatch)
		var data []byte
		var err error
		if r.strict {
			data, err = r.s.readChunks(r.ctx, r.id, r.off, want)
		} else {
			data, _, err = r.s.ReadAt(r.ctx, r.id, r.off, int(want))
		}
		if err != nil {
			return 0, err
		}
		if len(data) == 0 {
			return 0, fmt.Errorf("trace %d: ends at %d, want %d bytes", r.id, r.off, r.size)
		}
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.off += int64(n)
	return n, nil
}

// readChunks reads n bytes of a live log from off; fewer when chunks are
// missing (the log was archived or rewritten meanwhile).
func (s *Store) readChunks(ctx context.Context, id, off, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	first, last := off/s.chunk, (off+n-1)/s.chunk
	chunks, err := s.db.TraceChunks(ctx, id, first, last)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, n)
	pos := first * s.chunk
	for _, c := range chunks {
		if c.Idx*s.chunk != pos {
			break // a gap
		}
		lo := max(off-pos, 0)
		if lo < int64(len(c.Data)) {
			out = append(out, c.Data[lo:min(int64(len(c.Data)), off+n-pos)]...)
		}
		if int64(len(c.Data)) != s.chunk {
			break // a short chunk ends the log
		}
		pos += s.chunk
	}
	return out, nil
}

// ReadAt returns up to max bytes of the trace from offset and the trace's
// size (max ≤ 0: only the size). It reads only the chunks (or the part of
// the archived object) it returns.
func (s *Store) ReadAt(ctx context.Context, id, offset int64, max int) ([]byte, int64, error) {
	m, live, err := s.meta(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if live {
		size := m.Size
		if max <= 0 || offset < 0 || offset >= size {
			return nil, size, nil
		}
		want := min(int64(max), size-offset)
		data, err := s.readChunks(ctx, id, offset, want)
		if err != nil || int64(len(data)) == want {
			return data, size, err
		}
		// Chunks went missing: archived between the two reads (then read
		// the object), or rewritten by the runner (then this is all).
		if _, live, err := s.meta(ctx, id); err != nil || live {
			return data, size, err
		}
	}
	return s.readObjectAt(ctx, id, offset, max)
}

// readObjectAt reads part of an archived log; a failure of the object
// store matches blob.ErrUnavailable.
func (s *Store) readObjectAt(ctx context.Context, id, offset int64, max int) ([]byte, int64, error) {
	data, size, err := s.readObject(ctx, id, offset, max)
	return data, size, blob.Unavailable(ctx, err)
}

func (s *Store) readObject(ctx context.Context, id, offset int64, max int) ([]byte, int64, error) {
	if max <= 0 || offset < 0 {
		info, err := s.objects.Stat(ctx, Key(id))
		if errors.Is(err, blob.ErrNotFound) {
			return nil, 0, nil
		}
		return nil, info.Size, err
	}
	rc, info, err := s.objects.Get(ctx, Key(id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	size := info.Size
	if offset >= size {
		return nil, size, nil
	}
	if sk, ok := rc.(io.Seeker); ok {
		if _, err := sk.Seek(offset, io.SeekStart); err != nil {
			return nil, size, err
		}
	} else if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
		return nil, size, err
	}
	buf := make([]byte, min(int64(max), size-offset))
	n, err := io.ReadFull(rc, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return buf[:n], size, err
}

// ReadAll returns a whole trace.
func (s *Store) ReadAll(ctx context.Context, id int64) ([]byte, error) {
	rc, _, err := s.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Archive copies a finished job's live log to its object and then deletes
// the chunks, in that order: a crash in between leaves chunks that the
// next pass archives again (the Put replaces the object). On PostgreSQL a
// claim keeps two replicas from archiving one log at once. A log that is
// already archived, or changed meanwhile, is left alone.
func (s *Store) Archive(ctx context.Context, id int64) error {
	_, err := s.db.WithClaim(ctx, "trace-archive:"+strconv.FormatInt(id, 10), func(ctx context.Context) error {
		m, live, err := s.meta(ctx, id)
		if err != nil || !live {
			return err
		}
		r := &liveReader{ctx: ctx, s: s, id: id, size: m.Size, strict: true}
		if err := s.objects.Put(ctx, Key(id), r, m.Size); err != nil {
			return fmt.Errorf("archiving trace %d: %w", id, err)
		}
		if s.afterPut != nil {
			if err := s.afterPut(id); err != nil {
				return err
			}
		}
		return s.db.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.FinishTraceArchive(ctx, id, m.Size)
			return err
		})
	})
	return err
}

// archiveBatch is how many logs one query of ArchivePass lists.
const archiveBatch = 100

// ArchivePass archives the live logs of every finished job: the
// "trace-archiver" loop, kicked when a job finishes and run periodically
// to finish what a crash or another replica left.
func (s *Store) ArchivePass(ctx context.Context) error {
	var firstErr error
	for {
		list, err := s.db.ArchivableTraces(ctx, archiveBatch)
		if err != nil {
			return err
		}
		done := 0
		for _, m := range list {
			if err := s.Archive(ctx, m.JobID); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			done++
		}
		if len(list) < archiveBatch || done == 0 || ctx.Err() != nil {
			return firstErr
		}
	}
}

// Delete removes a trace (job erased or deleted): its chunks and row, and
// its archived object.
func (s *Store) Delete(id int64) error {
	defer s.lock(id)()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.db.Write(ctx, func(tx *store.Tx) error { return tx.DeleteTrace(ctx, id) }); err != nil {
		return err
	}
	for _, k := range []string{Key(id), cutKey(id)} {
		if err := s.objects.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// IDs lists the jobs that have a trace (rows, or objects when the blob
// store can list them), for the sweeper that removes logs whose job is
// gone.
func (s *Store) IDs() ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.db.TraceJobIDs(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	for _, id := range out {
		seen[id] = true
	}
	l, ok := s.objects.(blob.Lister)
	if !ok {
		return out, nil
	}
	err = l.List(ctx, "traces/", func(key string, _ blob.Info) error {
		name := strings.TrimPrefix(key, "traces/")
		base, ok := strings.CutSuffix(name, ".log")
		if !ok {
			base, ok = strings.CutSuffix(name, ".cut")
		}
		id, err := strconv.ParseInt(base, 10, 64)
		if !ok || err != nil || id <= 0 || seen[id] {
			return nil
		}
		seen[id] = true
		out = append(out, id)
		return nil
	})
	return out, err
}
