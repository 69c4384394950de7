package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Stage attempts, as GitLab Runner's GET_SOURCES_ATTEMPTS,
// ARTIFACT_DOWNLOAD_ATTEMPTS, RESTORE_CACHE_ATTEMPTS and
// EXECUTOR_JOB_SECTION_ATTEMPTS job variables: default 1, allowed 1-10.
const (
	defaultStageAttempts = 1
	maxStageAttempts     = 10
)

// attemptSettings are the job's stage attempt counts.
type attemptSettings struct {
	getSources, artifactDownload, restoreCache, executorSection int
}

// attemptSettings reads the *_ATTEMPTS variables as GitLab Runner does: an
// empty value means the default; a value that is not a number is warned
// about and replaced by the default; a number outside 1-10 fails the stage
// it belongs to (GitLab Runner: "number of attempts out of the range
// [1, 10] for stage: …"), except EXECUTOR_JOB_SECTION_ATTEMPTS, which
// falls back to the default with a warning.
func (j *jobRun) attemptSettings() (attemptSettings, []string) {
	var warnings []string
	read := func(name string) int {
		raw := j.vars[name]
		if raw == "" {
			return defaultStageAttempts
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: expected int got %q, using default value: %d", name, raw, defaultStageAttempts))
			return defaultStageAttempts
		}
		// Out of range stays out of range (and fits an int).
		return int(max(min(n, maxStageAttempts+1), 0))
	}
	s := attemptSettings{
		getSources:       read("GET_SOURCES_ATTEMPTS"),
		artifactDownload: read("ARTIFACT_DOWNLOAD_ATTEMPTS"),
		restoreCache:     read("RESTORE_CACHE_ATTEMPTS"),
		executorSection:  read("EXECUTOR_JOB_SECTION_ATTEMPTS"),
	}
	if s.executorSection < 1 || s.executorSection > maxStageAttempts {
		warnings = append(warnings, fmt.Sprintf("EXECUTOR_JOB_SECTION_ATTEMPTS: number of attempts out of the range [1, %d], using default %d", maxStageAttempts, defaultStageAttempts))
		s.executorSection = defaultStageAttempts
	}
	return s, warnings
}

// checkAttempts is GitLab Runner's range check of a stage's attempts.
func checkAttempts(stage string, attempts int) error {
	if attempts < 1 || attempts > maxStageAttempts {
		return fmt.Errorf("number of attempts out of the range [1, %d] for stage: %s", maxStageAttempts, stage)
	}
	return nil
}

// attemptPause is how long Kiln waits before attempt n+1 (n ≥ 1) of a
// stage. GitLab Runner retries at once; a pause that grows by a second per
// attempt gives a restarting server or a flaky network time to come back.
func attemptPause(n int) time.Duration { return time.Duration(n) * time.Second }

// attemptStage runs a stage (one section per attempt, as GitLab Runner
// prints it) up to attempts times until it succeeds. Before the second
// get_sources attempt the worktree is cleared, as GitLab Runner's
// clear_worktree stage does.
func (j *jobRun) attemptStage(ctx context.Context, stage, header string, attempts int, fn func() error) error {
	if err := checkAttempts(stage, attempts); err != nil {
		return err
	}
	var err error
	for n := 0; n < attempts; n++ {
		if n > 0 {
			if ctx.Err() != nil {
				return err
			}
			d := attemptPause(n)
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: %s failed (%v); attempt %d of %d in %v\x1b[0;m\n", stage, err, n+1, attempts, d)
			if !sleepCtx(ctx, d) {
				return err
			}
			if n == 1 && stage == "get_sources" {
				if cerr := j.section("clear_worktree", "Deleting all tracked and untracked files due to source fetch failure", func() error {
					return j.clearWorktree(ctx)
				}); cerr != nil {
					err = cerr
					continue
				}
			}
		}
		if err = j.section(stage, header, fn); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// clearWorktree is GitLab Runner's clear_worktree stage: remove every
// tracked and untracked file of an existing checkout, so that a fetch that
// failed on a broken worktree can start clean.
func (j *jobRun) clearWorktree(ctx context.Context) error {
	fmt.Fprintf(j.trace, "Deleting tracked and untracked files...\n")
	if _, err := os.Stat(filepath.Join(j.projectDir, ".git")); err != nil {
		return nil
	}
	// Through the executor: the checkout's .git/config is the job's.
	git := func(args ...string) error {
		return j.sess.Run(ctx, Cmd{Args: append([]string{"git"}, args...), Dir: j.projectDir, Env: j.env, Out: j.trace})
	}
	if err := git("rm", "-rf", "--ignore-unmatch", "-q", "."); err != nil {
		return err
	}
	return git("clean", "-ffdx", "-q")
}
