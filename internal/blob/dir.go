package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// tmpPrefix starts the names of a Dir's files being written; List skips
// them and ValidKey refuses keys that would collide with them.
const tmpPrefix = ".blob-tmp-"

// Dir is the local-disk Store: key "a/b/c" is the file <dir>/a/b/c. A Put
// writes a temporary file next to the target and renames it into place, so
// readers see the old object or the new one, never a partial one.
type Dir struct {
	root string
}

var (
	_ Store  = (*Dir)(nil)
	_ Lister = (*Dir)(nil)
)

// NewDir returns a Dir rooted at dir, creating it if needed.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("blob: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Dir{root: dir}, nil
}

// Root is the directory the Dir keeps its files in.
func (d *Dir) Root() string { return d.root }

func (d *Dir) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put implements Store. When size ≥ 0 a reader that yields a different
// number of bytes fails the Put and leaves any previous object in place.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	var tmp *os.File
	// A concurrent Delete may remove the (empty) parent between MkdirAll
	// and CreateTemp: try again.
	for range 5 {
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if tmp, err = os.CreateTemp(filepath.Dir(p), tmpPrefix+"*"); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("blob: %s: read %d bytes, expected %d", key, n, size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Get implements Store; the reader is an *os.File (an io.ReadSeeker).
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Info{}, notFound(key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, Info{Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, key string) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return Info{}, notFound(key, err)
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return Info{Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements Store; directories it leaves empty are removed (up to
// the root).
func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for dir := filepath.Dir(p); dir != d.root && strings.HasPrefix(dir, d.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			break
		}
	}
	return nil
}

// PresignGet implements Store: a disk has no URLs of its own.
func (d *Dir) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (string, bool, error) {
	if err := ValidKey(key); err != nil {
		return "", false, err
	}
	return "", false, nil
}

// Ping implements Store: the root must be a directory.
func (d *Dir) Ping(ctx context.Context) error {
	st, err := os.Stat(d.root)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("blob: %s is not a directory", d.root)
	}
	return nil
}

// List implements Lister.
func (d *Dir) List(ctx context.Context, prefix string, fn func(string, Info) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	// Walk the deepest directory the prefix names whole.
	base := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = prefix[:i]
	}
	start := filepath.Join(d.root, filepath.FromSlash(base))
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || ValidKey(key) != nil {
			return nil
		}
		st, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(key, Info{Size: st.Size(), ModTime: st.ModTime()})
	})
	return err
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return err
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
