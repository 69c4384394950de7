// Package sweep removes the files of deleted jobs and projects. A deletion
// records what to remove (store.FileDeletion) in the same transaction that
// deletes the rows; the sweeper removes the files after commit, and again at
// every start and every minute, so that a crash between the commit and the
// removal never leaves a deleted job's log, artifacts, or a deleted
// project's repository, caches and build directories behind for good.
package sweep

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/kilnci/kiln/internal/store"
)

// Files is where job files live (traces.Store and artifacts.Store).
type Files interface {
	Delete(jobID int64) error
	IDs() ([]int64, error)
}

// Repos deletes a project's repository or one of its refs; a missing one
// is not an error the sweeper cares about (Config.RepoGone says which
// errors mean "already gone").
type Repos interface {
	Delete(ctx context.Context, repo string) error
	DeleteRef(ctx context.Context, repo, fullRef string) error
}

// Config is what a Sweeper works with.
type Config struct {
	Store *store.Store
	// JobFiles are the stores holding per-job files (traces, artifacts).
	JobFiles []Files
	Repos    Repos
	// RepoGone reports whether a Repos.Delete error means the repository
	// was already gone.
	RepoGone func(error) bool
	// ProjectDirs lists the directories holding a project's caches and
	// build leftovers on this server (built-in runners), by full path.
	ProjectDirs func(projectPath string) []string
	Log         *slog.Logger
}

// Sweeper carries out queued file removals.
type Sweeper struct {
	cfg Config
	mu  sync.Mutex // one sweep at a time
}

// New returns a Sweeper.
func New(cfg Config) *Sweeper {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{cfg: cfg}
}

// Sweep carries out every pending removal. A removal that fails stays
// queued for the next sweep; the others are forgotten once done.
func (s *Sweeper) Sweep(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var firstErr error
	for {
		pending, err := s.cfg.Store.PendingFileDeletions(ctx, 200)
		if err != nil {
			return err
		}
		var done []int64
		for _, d := range pending {
			if err := s.remove(ctx, d); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			done = append(done, d.ID)
		}
		if len(done) > 0 {
			if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.DoneFileDeletions(ctx, done) }); err != nil {
				return err
			}
		}
		if len(pending) < 200 || len(done) == 0 {
			return firstErr
		}
	}
}

func (s *Sweeper) remove(ctx context.Context, d store.FileDeletion) error {
	if d.JobID != 0 {
		for _, f := range s.cfg.JobFiles {
			if err := f.Delete(d.JobID); err != nil {
				return err
			}
		}
	}
	if d.ProjectPath == "" {
		return nil
	}
	if d.GitRef != "" {
		if s.cfg.Repos == nil {
			return nil
		}
		if err := s.cfg.Repos.DeleteRef(ctx, d.ProjectPath, d.GitRef); err != nil && (s.cfg.RepoGone == nil || !s.cfg.RepoGone(err)) {
			return err
		}
		return nil
	}
	if s.cfg.ProjectDirs != nil {
		for _, dir := range s.cfg.ProjectDirs(d.ProjectPath) {
			if err := removeTree(dir); err != nil {
				return err
			}
		}
	}
	if s.cfg.Repos == nil {
		return nil
	}
	// A project created since at the same path owns the repository now
	// (it could only be created once the old one was gone).
	if _, err := s.cfg.Store.ProjectByPath(ctx, d.ProjectPath); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := s.cfg.Repos.Delete(ctx, d.ProjectPath); err != nil && (s.cfg.RepoGone == nil || !s.cfg.RepoGone(err)) {
		return err
	}
	s.cfg.Log.Info("removed a deleted project's files", "project", d.ProjectPath)
	return nil
}

// Orphans removes job files whose job row does not exist: left by a
// version before deletions were recorded, or written by a runner racing a
// deletion. It runs at start, before any new job can be created.
func (s *Sweeper) Orphans(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for _, f := range s.cfg.JobFiles {
		ids, err := f.IDs()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		exist, err := s.cfg.Store.ExistingJobIDs(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if exist[id] {
				continue
			}
			if err := f.Delete(id); err != nil {
				return err
			}
			removed++
		}
	}
	if removed > 0 {
		s.cfg.Log.Info("removed files of jobs that no longer exist", "count", removed)
	}
	return nil
}

// removeTree removes dir like os.RemoveAll. A job may have left
// directories without write permission in its work tree; when the first
// attempt fails, directories inside dir (never following symlinks) are
// made writable by their owner and the removal is tried again.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
