package runnerapi

import (
	"context"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// Run is the background loop: it fails jobs whose runner stopped reporting
// and removes expired artifacts, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	every := min(max(s.cfg.StaleTimeout/3, 200*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	lastExpiry := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.FailStaleJobs(ctx)
		if time.Since(lastExpiry) > time.Minute {
			lastExpiry = time.Now()
			s.ExpireArtifacts(ctx)
		}
	}
}

// FailStaleJobs fails running jobs (and ends canceling ones) whose runner
// has not reported for StaleTimeout. Each job is first claimed with a
// conditional update, so that two replicas running this loop fail it once.
func (s *Service) FailStaleJobs(ctx context.Context) {
	before := time.Now().Add(-s.cfg.StaleTimeout)
	jobs, err := s.cfg.Store.StaleRunningJobs(ctx, before)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing stale jobs failed", "err", err)
		}
		return
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
}

// ExpireArtifacts deletes archives past their expire_in.
func (s *Service) ExpireArtifacts(ctx context.Context) {
	for {
		jobs, err := s.cfg.Store.ExpiredArtifacts(ctx, time.Now(), 100)
		if err != nil || len(jobs) == 0 {
			return
		}
		for _, j := range jobs {
			if err := s.cfg.Artifacts.Delete(j.ID); err != nil {
				s.log.Warn("deleting expired artifacts failed", "job", j.ID, "err", err)
				return
			}
			if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.ClearJobArtifacts(ctx, j.ID) }); err != nil {
				return
			}
		}
	}
}
