// Package blob keeps large immutable objects (artifacts archives, finished
// job logs, caches) by key, on local disk (Dir, the default) or in an
// S3-compatible bucket (S3), so that server replicas can share them.
//
// Keys are slash-separated relative paths such as
// "artifacts/12/artifacts.zip" or "traces/12.log"; ValidKey says which are
// accepted.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store keeps large immutable objects (artifacts, finished job logs, caches) by key ("artifacts/12/artifacts.zip").
type Store interface {
	// Put streams r to key (size -1 if unknown; never holds the whole object in memory), replacing any object there.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens key; a missing key is an error matching errors.Is(err, blob.ErrNotFound).
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// PresignGet returns a time-limited URL a client can GET directly, ok=false when the store has none (disk).
	PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (url string, ok bool, err error)
	// Ping checks the store is reachable (readiness).
	Ping(ctx context.Context) error
}

// Lister is implemented by stores that can enumerate their keys (both Dir
// and S3 do): the sweeper uses it to find objects of jobs that no longer
// exist, migrate-storage to copy a data dir.
type Lister interface {
	// List calls fn for every key under prefix (a key prefix, usually
	// ending in "/"), in no particular order; an error from fn stops the
	// listing and is returned.
	List(ctx context.Context, prefix string, fn func(key string, info Info) error) error
}

// Info describes a stored object.
type Info struct {
	Size    int64
	ModTime time.Time
}

// ErrNotFound reports a missing key.
var ErrNotFound = errors.New("blob: not found")

// ErrBadKey reports a key ValidKey refuses.
var ErrBadKey = errors.New("blob: invalid key")

// ValidKey checks a key: a non-empty relative slash path of at most 1024
// bytes, without NUL, backslash, empty, "." or ".." segments, and no
// segment starting with the Dir's temporary-file prefix.
func ValidKey(key string) error {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\x00\\") {
		return fmt.Errorf("%w %q", ErrBadKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, tmpPrefix) {
			return fmt.Errorf("%w %q", ErrBadKey, key)
		}
	}
	return nil
}

// validPrefix checks a List prefix: "" or a valid key, optionally with a
// trailing slash.
func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidKey(strings.TrimSuffix(prefix, "/"))
}
