// Package artifacts stores job artifacts archives under
// <data-dir>/artifacts/<job id>/.
package artifacts

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultLimit is the largest archive accepted.
const DefaultLimit = 100 << 20

// ErrTooLarge reports an upload over the limit; nothing is stored.
var ErrTooLarge = errors.New("artifacts archive too large")

// Store keeps archives as files.
type Store struct {
	dir   string
	limit int64
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

// Limit is the largest accepted archive.
func (s *Store) Limit() int64 { return s.limit }

func (s *Store) jobDir(id int64) string { return filepath.Join(s.dir, strconv.FormatInt(id, 10)) }

// CleanName reduces an uploaded file name to a safe base name.
func CleanName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" || name == ".." || name == "" || strings.ContainsAny(name, "\x00") {
		return "artifacts.zip"
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

// Save stores r as the job's archive named name, replacing any previous one
// atomically; an over-limit upload leaves the previous state untouched.
func (s *Store) Save(id int64, name string, r io.Reader) (int64, error) {
	dir := s.jobDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, s.limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if n > s.limit {
		return 0, ErrTooLarge
	}
	// One archive per job: drop older ones under other names.
	if old, _ := os.ReadDir(dir); old != nil {
		for _, e := range old {
			if !strings.HasPrefix(e.Name(), ".upload-") {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, CleanName(name))); err != nil {
		return 0, err
	}
	return n, nil
}

// Open opens a job's archive.
func (s *Store) Open(id int64, name string) (*os.File, error) {
	return os.Open(filepath.Join(s.jobDir(id), CleanName(name)))
}

// Delete removes a job's archives.
func (s *Store) Delete(id int64) error {
	return os.RemoveAll(s.jobDir(id))
}

// IDs lists the jobs that have an artifacts directory, for the sweeper
// that removes files whose job is gone.
func (s *Store) IDs() ([]int64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id > 0 && e.IsDir() {
			out = append(out, id)
		}
	}
	return out, nil
}
