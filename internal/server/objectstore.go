package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/blob"
)

// OpenObjectStore opens the store of artifacts and finished job logs that
// cfg names: the data dir itself by default (keys such as
// "artifacts/12/artifacts.zip" are the files' paths under it, the layout
// Kiln always had), or an S3 bucket, which must be reachable: a server
// that could not keep artifacts refuses to start rather than fail jobs.
func OpenObjectStore(ctx context.Context, cfg Config, log *slog.Logger) (blob.Store, error) {
	switch cfg.ObjectStore {
	case "", "disk":
		return blob.NewDir(cfg.DataDir)
	case "s3":
		s, err := blob.NewS3(cfg.S3)
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := s.Ping(pctx); err != nil {
			return nil, fmt.Errorf("object store: %w (check --s3-endpoint, --s3-bucket and the credentials; the bucket must exist)", err)
		}
		log.Info("object store", "store", s.String())
		return s, nil
	}
	return nil, fmt.Errorf("unknown object store %q (disk or s3)", cfg.ObjectStore)
}

// Blobs is the object store (for tests and subcommands).
func (s *Server) Blobs() blob.Store { return s.blobs }

// MigrateStorage copies the artifacts archives and finished job logs of
// cfg.DataDir (artifacts/<job id>/<name>, traces/<job id>.log) into the
// object store cfg names, which must not be the disk. It is idempotent
// and resumable (see blob.Migrate); the data dir is only read. Each key's
// outcome goes to report (nil: none).
func MigrateStorage(ctx context.Context, cfg Config, log *slog.Logger, report func(blob.MigrateEvent)) (blob.MigrateStats, error) {
	if cfg.ObjectStore == "" || cfg.ObjectStore == "disk" {
		return blob.MigrateStats{}, fmt.Errorf("migrate-storage copies the data dir into an object store: give --object-store s3 and its --s3-* settings")
	}
	if st, err := os.Stat(cfg.DataDir); err != nil || !st.IsDir() {
		return blob.MigrateStats{}, fmt.Errorf("data dir %s: not a directory", cfg.DataDir)
	}
	src, err := blob.NewDir(cfg.DataDir)
	if err != nil {
		return blob.MigrateStats{}, err
	}
	dst, err := OpenObjectStore(ctx, cfg, log)
	if err != nil {
		return blob.MigrateStats{}, err
	}
	return blob.Migrate(ctx, src, dst, []string{"artifacts/", "traces/"}, migratedKey, report)
}

// migratedKey says which data dir files are objects: artifacts archives
// and finished job logs (not a live log's .cut marker, not temporary
// files).
func migratedKey(key string) bool {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 3 && parts[0] == "artifacts":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		return err == nil && id > 0 && !strings.HasPrefix(parts[2], ".")
	case len(parts) == 2 && parts[0] == "traces":
		idStr, ok := strings.CutSuffix(parts[1], ".log")
		id, err := strconv.ParseInt(idStr, 10, 64)
		return ok && err == nil && id > 0
	}
	return false
}
