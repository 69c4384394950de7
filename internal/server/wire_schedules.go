package server

import (
	"context"
	"sync"

	"github.com/kilnci/kiln/internal/schedule"
)

// wireSchedules starts the pipeline scheduler and connects the schedules
// API to it (wake-ups on change, play). The loop stops on Close.
func (s *Server) wireSchedules(ctx context.Context) error {
	sched := schedule.New(s.store, s.engine, s.secrets, s.log)
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
