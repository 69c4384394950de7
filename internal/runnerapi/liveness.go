package runnerapi

import (
	"context"
	"fmt"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// StaleCheckEvery is how often FailStaleJobs should run.
func (s *Service) StaleCheckEvery() time.Duration {
	return min(max(s.cfg.StaleTimeout/3, 200*time.Millisecond), 30*time.Second)
}

// FailStaleJobs fails running jobs (and ends canceling ones) whose runner
// has not reported for StaleTimeout. Each job is first claimed with a
// conditional update, so that two replicas running this loop fail it once.
//
// Right after a (re)start nothing is stale yet: runners that kept running
// while the server was down could not report, and get the full timeout to
// reach it again. (Jobs of this server's own built-in runners, which died
// with it, are finished at start instead; see internal/server.)
func (s *Service) FailStaleJobs(ctx context.Context) error {
	if time.Since(s.started) < s.cfg.StaleTimeout {
		return nil
	}
	before := time.Now().Add(-s.cfg.StaleTimeout)
	jobs, err := s.cfg.Store.StaleRunningJobs(ctx, before)
	if err != nil {
		return fmt.Errorf("listing stale jobs: %w", err)
	}
	for _, j := range jobs {
		var won bool
		err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error {
			var err error
			won, err = tx.ClaimStaleJob(ctx, j.ID, j.Status, before)
			return err
		})
		if err != nil || !won {
			continue
		}
		final, err := s.cfg.Engine.FinishJob(ctx, j.ID, "failed", "runner_system_failure", nil)
		if err != nil {
			s.log.Warn("failing stale job failed", "job", j.ID, "err", err)
			continue
		}
		s.forget(j.ID)
		s.log.Info("job's runner stopped reporting", "job", j.ID, "runner", j.RunnerID, "status", final, "stale_timeout", s.cfg.StaleTimeout)
	}
	return nil
}

// ExpireArtifacts deletes archives past their expire_in.
func (s *Service) ExpireArtifacts(ctx context.Context) error {
	for {
		jobs, err := s.cfg.Store.ExpiredArtifacts(ctx, time.Now(), 100)
		if err != nil || len(jobs) == 0 {
			return err
		}
		for _, j := range jobs {
			if err := s.cfg.Artifacts.DeleteJob(ctx, j.ID); err != nil {
				return fmt.Errorf("deleting expired artifacts of job %d: %w", j.ID, err)
			}
			if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.ClearJobArtifacts(ctx, j.ID) }); err != nil {
				return err
			}
		}
	}
}

// AckCheckEvery is how often RequeueUnacknowledged should run.
func (s *Service) AckCheckEvery() time.Duration {
	return min(max(s.cfg.AckTimeout/4, 100*time.Millisecond), 15*time.Second)
}

// RequeueUnacknowledged puts jobs back in the queue that were handed to a
// runner which never acknowledged them: no state update and no trace since
// the assignment, for longer than AckTimeout. The response carrying the
// job was lost (the runner's request was cut, the runner died before
// reading it), so the job never started; GitLab Runner, like kiln runner,
// acknowledges at once with PUT state=running (two-phase commit, 18.5+) or
// its first trace PATCH within seconds. The token handed out is revoked,
// so a runner that wakes up late is refused (403) and drops the job.
//
// As for stale jobs, the deadline only counts while this server is up: a
// runner that received a job just before a crash acknowledges it once the
// server is back, and must not find it requeued (an old GitLab Runner
// starts the script before its first trace, so requeueing would run it
// twice).
func (s *Service) RequeueUnacknowledged(ctx context.Context) error {
	if time.Since(s.started) < s.cfg.AckTimeout {
		return nil
	}
	jobs, err := s.cfg.Store.UnacknowledgedJobs(ctx, time.Now().Add(-s.cfg.AckTimeout))
	if err != nil {
		return fmt.Errorf("listing unacknowledged jobs: %w", err)
	}
	for _, j := range jobs {
		ok, err := s.cfg.Engine.RequeueUnacknowledged(ctx, j.ID)
		if err != nil {
			s.log.Warn("requeueing an unacknowledged job failed", "job", j.ID, "err", err)
			continue
		}
		if ok {
			s.forget(j.ID)
			s.log.Info("job's runner never acknowledged it; back to pending", "job", j.ID, "runner", j.RunnerID, "ack_timeout", s.cfg.AckTimeout)
		}
	}
	return nil
}
