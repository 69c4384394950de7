// Package traces stores job logs as append-only files under
// <data-dir>/traces, one per job, readable while the job runs.
package traces

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// DefaultLimit is the size after which a trace is cut.
const DefaultLimit = 100 << 20

// ErrRange reports a write that starts beyond the stored length; Size holds
// the length the writer should resume from.
type ErrRange struct{ Size int64 }

func (e *ErrRange) Error() string { return fmt.Sprintf("trace range starts beyond %d bytes", e.Size) }

// Store keeps traces as files.
type Store struct {
	dir   string
	limit int64
	locks [64]sync.Mutex
}

// New returns a Store under dir; limit ≤ 0 means DefaultLimit.
func New(dir string, limit int64) (*Store, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{dir: dir, limit: limit}, nil
}

// Limit is the configured size limit.
func (s *Store) Limit() int64 { return s.limit }

func (s *Store) path(id int64) string { return filepath.Join(s.dir, strconv.FormatInt(id, 10)+".log") }

// cutPath marks a trace that hit the limit; it holds the length the runner
// believes it has sent, so that its offsets keep making sense.
func (s *Store) cutPath(id int64) string {
	return filepath.Join(s.dir, strconv.FormatInt(id, 10)+".cut")
}

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
func (s *Store) Append(id int64, start int64, body []byte) (int64, error) {
	defer s.lock(id)()
	if start < 0 {
		return 0, errors.New("negative offset")
	}
	if b, err := os.ReadFile(s.cutPath(id)); err == nil {
		// Already cut: keep the runner's offsets moving, store nothing.
		virt, _ := strconv.ParseInt(string(b), 10, 64)
		if start > virt {
			return 0, &ErrRange{Size: virt}
		}
		virt = start + int64(len(body))
		return virt, os.WriteFile(s.cutPath(id), []byte(strconv.FormatInt(virt, 10)), 0o600)
	}
	f, err := os.OpenFile(s.path(id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if start > st.Size() {
		return 0, &ErrRange{Size: st.Size()}
	}
	end := start + int64(len(body))
	if end > s.limit {
		keep := max(s.limit-start, 0)
		if err := f.Truncate(min(start, s.limit)); err != nil {
			return 0, err
		}
		if _, err := f.WriteAt(append(body[:keep:keep], cutNote(s.limit)...), min(start, s.limit)); err != nil {
			return 0, err
		}
		return end, os.WriteFile(s.cutPath(id), []byte(strconv.FormatInt(end, 10)), 0o600)
	}
	if start < st.Size() {
		if err := f.Truncate(start); err != nil {
			return 0, err
		}
	}
	if _, err := f.WriteAt(body, start); err != nil {
		return 0, err
	}
	return end, nil
}

// Size returns the stored length of a trace (0 if none).
func (s *Store) Size(id int64) int64 {
	st, err := os.Stat(s.path(id))
	if err != nil {
		return 0
	}
	return st.Size()
}

// Cut reports whether a trace hit the size limit.
func (s *Store) Cut(id int64) bool {
	_, err := os.Stat(s.cutPath(id))
	return err == nil
}

// Checksum is the runner protocol's "crc32:%08x" of the stored trace.
func (s *Store) Checksum(id int64) (string, error) {
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("crc32:%08x", 0), nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("crc32:%08x", h.Sum32()), nil
}

// Open returns the trace for reading (live while the job runs); a job with no
// output yet reads as empty.
func (s *Store) Open(id int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return io.NopCloser(eofReader{}), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	// Bound the read to the size at open time so a reader sees a consistent
	// prefix even while the runner appends.
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, st.Size()), f}, st.Size(), nil
}

// ReadAt returns up to max bytes of the trace from offset and the trace's
// size. It reads at the offset directly: skipping the head by reading it
// made every live-log poll and every chunk of the raw log re-read the whole
// trace before the offset.
func (s *Store) ReadAt(id, offset int64, max int) ([]byte, int64, error) {
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if max <= 0 || offset < 0 || offset >= size {
		return nil, size, nil
	}
	buf := make([]byte, min(int64(max), size-offset))
	n, err := f.ReadAt(buf, offset)
	if err == io.EOF {
		err = nil
	}
	return buf[:n], size, err
}

// ReadAll returns a whole trace.
func (s *Store) ReadAll(id int64) ([]byte, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Delete removes a trace (job erase).
func (s *Store) Delete(id int64) error {
	defer s.lock(id)()
	os.Remove(s.cutPath(id))
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// IDs lists the jobs that have a trace (or a cut marker) on disk, for the
// sweeper that removes files whose job is gone.
func (s *Store) IDs() ([]int64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	var out []int64
	for _, e := range ents {
		name := e.Name()
		base, ok := strings.CutSuffix(name, ".log")
		if !ok {
			base, ok = strings.CutSuffix(name, ".cut")
		}
		id, err := strconv.ParseInt(base, 10, 64)
		if !ok || err != nil || id <= 0 || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}
