// Package artifacts keeps job artifacts archives in a blob.Store, one
// archive per job under the key "artifacts/<job id>/<file name>" (on a
// blob.Dir at the data dir: the file <data-dir>/artifacts/<job id>/<name>,
// the layout Kiln always had).
package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/blob"
)

// DefaultLimit is the largest archive accepted.
const DefaultLimit = 100 << 20

// Prefix starts every artifacts key.
const Prefix = "artifacts/"

// ErrTooLarge reports an upload over the limit; nothing is stored.
var ErrTooLarge = errors.New("artifacts archive too large")

// opTimeout bounds the store operations of callers without a context of
// their own (the sweeper's Delete and IDs).
const opTimeout = 2 * time.Minute

// Store keeps archives in a blob.Store.
type Store struct {
	blobs blob.Store
	limit int64
}

// New returns a Store over blobs; limit ≤ 0 means DefaultLimit.
func New(blobs blob.Store, limit int64) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{blobs: blobs, limit: limit}
}

// Limit is the largest accepted archive.
func (s *Store) Limit() int64 { return s.limit }

// Blobs is the underlying object store.
func (s *Store) Blobs() blob.Store { return s.blobs }

func jobPrefix(id int64) string { return Prefix + strconv.FormatInt(id, 10) + "/" }

// Key is the object key of job id's archive named name.
func Key(id int64, name string) string { return jobPrefix(id) + CleanName(name) }

// CleanName reduces an uploaded file name to a safe base name.
func CleanName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" || name == ".." || name == "" || strings.ContainsAny(name, "\x00") || blob.ValidKey(name) != nil {
		return "artifacts.zip"
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

// limited fails the read that goes past n bytes with ErrTooLarge, so that
// the store drops the partial object.
type limited struct {
	r    io.Reader
	n    int64 // bytes still allowed
	read int64
	err  error // the reader's own failure (not io.EOF)
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	k, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		l.err = err
	}
	l.n -= int64(k)
	l.read += int64(k)
	if l.n < 0 {
		return k, ErrTooLarge
	}
	return k, err
}

// Save streams r into job id's archive named name, replacing any previous
// one (under any name); an over-limit or failed upload leaves the previous
// archive in place. A failure of r is returned as is; one of the object
// store itself (unreachable, frozen, refusing) matches blob.ErrUnavailable,
// which callers answer with 503 naming the object store.
func (s *Store) Save(ctx context.Context, id int64, name string, r io.Reader) (int64, error) {
	key := Key(id, name)
	lr := &limited{r: r, n: s.limit}
	if err := s.blobs.Put(ctx, key, lr, -1); err != nil {
		switch {
		case lr.n < 0 || errors.Is(err, ErrTooLarge):
			return 0, ErrTooLarge
		case lr.err != nil:
			return 0, lr.err
		case ctx.Err() != nil:
			return 0, ctx.Err()
		}
		return 0, blob.Unavailable(ctx, err)
	}
	// One archive per job: drop older ones under other names.
	err := s.list(ctx, jobPrefix(id), func(k string) error {
		if k == key {
			return nil
		}
		return s.blobs.Delete(ctx, k)
	})
	if err != nil {
		return 0, blob.Unavailable(ctx, fmt.Errorf("removing the previous archive of job %d: %w", id, err))
	}
	return lr.read, nil
}

// Open opens a job's archive; a missing one matches blob.ErrNotFound.
func (s *Store) Open(ctx context.Context, id int64, name string) (io.ReadCloser, blob.Info, error) {
	return s.blobs.Get(ctx, Key(id, name))
}

// Stat describes a job's archive.
func (s *Store) Stat(ctx context.Context, id int64, name string) (blob.Info, error) {
	return s.blobs.Stat(ctx, Key(id, name))
}

// PresignGet is a URL the client can download the archive from directly
// (ok=false when the store has none: disk).
func (s *Store) PresignGet(ctx context.Context, id int64, name string, ttl time.Duration) (string, bool, error) {
	return s.blobs.PresignGet(ctx, Key(id, name), ttl, CleanName(name))
}

// DeleteJob removes a job's archives.
func (s *Store) DeleteJob(ctx context.Context, id int64) error {
	return s.list(ctx, jobPrefix(id), func(k string) error { return s.blobs.Delete(ctx, k) })
}

// Delete removes a job's archives (sweep.Files).
func (s *Store) Delete(id int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return s.DeleteJob(ctx, id)
}

// IDs lists the jobs that have archives, for the sweeper that removes
// those whose job is gone (sweep.Files).
func (s *Store) IDs() ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	seen := map[int64]bool{}
	var out []int64
	err := s.list(ctx, Prefix, func(k string) error {
		idStr, _, ok := strings.Cut(strings.TrimPrefix(k, Prefix), "/")
		if id, err := strconv.ParseInt(idStr, 10, 64); ok && err == nil && id > 0 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
		return nil
	})
	return out, err
}

// list calls fn for the keys under prefix; collected first, so that fn
// may delete.
func (s *Store) list(ctx context.Context, prefix string, fn func(key string) error) error {
	l, ok := s.blobs.(blob.Lister)
	if !ok {
		return fmt.Errorf("artifacts: the object store cannot list keys")
	}
	var keys []string
	if err := l.List(ctx, prefix, func(k string, _ blob.Info) error { keys = append(keys, k); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}
