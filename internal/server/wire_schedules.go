package server

import (
	"context"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/schedule"
)

// wireSchedules starts the pipeline scheduler and connects the schedules
// API to it (wake-ups on change, play). The loop stops on Close.
func (s *Server) wireSchedules(ctx context.Context) error {
	sched := schedule.New(s.store, s.engine, s.secrets, s.log)
	// An every-minute cron runs at most every 5 minutes, as on GitLab
	// (whose schedule worker runs every 5 minutes).
	sched.MinInterval = 5 * time.Minute
	s.api.Schedules = sched
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { sched.Run(loopCtx) })
	s.closers = append(s.closers, func() {
		stop()
		wg.Wait()
	})
	return nil
}
