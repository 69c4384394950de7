package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/sweep"
)

// wireCleanup starts the sweeper that removes the files of deleted jobs
// and projects (see package sweep). Before the server serves anything it
// carries out removals a crash interrupted and removes job files whose job
// no longer exists; then it runs after every deletion (api.FilesDeleted)
// and every minute, as the lifecycle's "file-sweeper" loop.
func (s *Server) wireCleanup(ctx context.Context) error {
	var files []sweep.Files
	if tr := s.api.Runners.Traces; tr != nil {
		files = append(files, tr)
	}
	if ar := s.api.Runners.Artifacts; ar != nil {
		files = append(files, ar)
	}
	sw := sweep.New(sweep.Config{
		Store: s.store, JobFiles: files, Repos: s.repos, Log: s.log,
		RepoGone: func(err error) bool {
			return errors.Is(err, gitrepo.ErrRepoNotFound) || errors.Is(err, gitrepo.ErrRefNotFound)
		},
		ProjectDirs: s.builtinProjectDirs,
	})
	if err := sw.Sweep(ctx); err != nil {
		s.log.Warn("removing files of deleted jobs and projects failed; retrying every minute", "err", err)
	}
	if err := sw.Orphans(ctx); err != nil {
		s.log.Warn("removing files of jobs that no longer exist failed", "err", err)
	}
	s.api.FilesDeleted = func(ctx context.Context) {
		if err := sw.Sweep(ctx); err != nil {
			s.log.Warn("removing deleted files failed; retrying every minute", "err", err)
		}
	}
	// A periodic pass: what a deletion's own sweep could not remove is
	// retried every minute, and the lifecycle reports the last error.
	return s.loops.Add(lifecycle.Loop{Name: "file-sweeper", Every: time.Minute, Run: sw.Sweep})
}

// builtinBuildsDir and builtinCacheDir are where built-in runners keep
// work trees and caches.
func (s *Server) builtinBuildsDir() string { return filepath.Join(s.cfg.DataDir, "builds") }
func (s *Server) builtinCacheDir() string  { return filepath.Join(s.cfg.DataDir, "cache") }

// builtinProjectDirs lists a project's caches and work trees left by
// built-in runners: <cache>/<path> and <builds>/<runner>/<token>/<slot>/<path>
// (with its .tmp sibling), the layout of package runner.
func (s *Server) builtinProjectDirs(projectPath string) []string {
	rel := filepath.FromSlash(projectPath)
	if projectPath == "" || filepath.IsAbs(rel) || !filepath.IsLocal(rel) || strings.Contains(projectPath, "..") {
		return nil
	}
	dirs := []string{filepath.Join(s.builtinCacheDir(), rel)}
	slots, _ := filepath.Glob(filepath.Join(s.builtinBuildsDir(), "*", "*", "*"))
	for _, slot := range slots {
		for _, d := range []string{filepath.Join(slot, rel), filepath.Join(slot, rel) + ".tmp"} {
			if _, err := os.Lstat(d); err == nil {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}
