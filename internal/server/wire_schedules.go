package server

import (
	"context"
	"time"

	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/schedule"
)

// wireSchedules registers the pipeline scheduler's loop and connects the
// schedules API to it (wake-ups on change, play).
func (s *Server) wireSchedules(ctx context.Context) error {
	sched := schedule.New(s.store, s.engine, s.secrets, s.log)
	// An every-minute cron runs at most every 5 minutes, as on GitLab
	// (whose schedule worker runs every 5 minutes).
	sched.MinInterval = 5 * time.Minute
	s.api.Schedules = sched
	// Every replica runs it: each due time is claimed with a conditional
	// update (store.Tx.ClaimScheduleRun), so it fires once.
	return s.loops.Add(lifecycle.Loop{Name: "scheduler", Run: func(ctx context.Context) error {
		sched.Run(ctx)
		return nil
	}})
}
