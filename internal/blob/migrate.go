package blob

import (
	"context"
	"errors"
	"fmt"
)

// MigrateStats sums up a Migrate run.
type MigrateStats struct {
	// Copied objects (and their bytes); Skipped ones were already in the
	// destination with the same size; Failed ones could not be copied or
	// did not verify.
	Copied, Skipped, Failed int
	Bytes                   int64
}

// MigrateEvent reports one key's outcome: "copied", "skipped" or
// "failed" (with Err).
type MigrateEvent struct {
	Key    string
	Action string
	Size   int64
	Err    error
}

// Migrate copies the objects of src under prefixes whose key keep accepts
// (nil: all) into dst. It is idempotent and resumable: an object already
// in dst with the source's size is skipped; a copied object is verified
// by its size in dst afterwards. Sources are never changed. Per-key
// failures are counted (and reported to report, which may be nil) and
// the run goes on; the error is a listing failure or ctx's.
func Migrate(ctx context.Context, src Store, dst Store, prefixes []string, keep func(key string) bool, report func(MigrateEvent)) (MigrateStats, error) {
	var st MigrateStats
	l, ok := src.(Lister)
	if !ok {
		return st, errors.New("blob: the source store cannot list its keys")
	}
	if report == nil {
		report = func(MigrateEvent) {}
	}
	for _, prefix := range prefixes {
		type item struct {
			key  string
			size int64
		}
		var items []item
		err := l.List(ctx, prefix, func(key string, info Info) error {
			if keep == nil || keep(key) {
				items = append(items, item{key, info.Size})
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if info, err := dst.Stat(ctx, it.key); err == nil && info.Size == it.size {
				st.Skipped++
				report(MigrateEvent{Key: it.key, Action: "skipped", Size: it.size})
				continue
			}
			n, err := copyOne(ctx, src, dst, it.key)
			if err != nil {
				st.Failed++
				report(MigrateEvent{Key: it.key, Action: "failed", Err: err})
				continue
			}
			st.Copied++
			st.Bytes += n
			report(MigrateEvent{Key: it.key, Action: "copied", Size: n})
		}
	}
	return st, nil
}

func copyOne(ctx context.Context, src, dst Store, key string) (int64, error) {
	rc, info, err := src.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if err := dst.Put(ctx, key, rc, info.Size); err != nil {
		return 0, err
	}
	got, err := dst.Stat(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("verifying: %w", err)
	}
	if got.Size != info.Size {
		return 0, fmt.Errorf("verifying: %d bytes stored, %d in the source", got.Size, info.Size)
	}
	return info.Size, nil
}
