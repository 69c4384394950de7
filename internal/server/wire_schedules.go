package server

import (
	"context"
	"time"

	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/queue"
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
	if s.announcer != nil {
		// A schedule saved through another replica wakes this one's loop
		// at once (it re-reads the earliest due time), over the runners'
		// LISTEN/NOTIFY connection; the loop's one-minute sleep bound stays
		// as a backstop.
		s.announcer.OnAnnounce(scheduleTopic, sched.Changed)
		s.api.Schedules = announcedSchedules{sched, s.announcer}
	}
	// Every replica runs it: each due time is claimed with a conditional
	// update (store.Tx.ClaimScheduleRun), so it fires once.
	return s.loops.Add(lifecycle.Loop{Name: "scheduler", Run: func(ctx context.Context) error {
		sched.Run(ctx)
		return nil
	}})
}

// scheduleTopic is the announcement of a created, edited or deleted
// pipeline schedule.
const scheduleTopic = "schedules"

// announcedSchedules wakes this replica's scheduler and tells the others
// when a schedule changed.
type announcedSchedules struct {
	*schedule.Scheduler
	announcer *queue.Postgres
}

func (a announcedSchedules) Changed() {
	a.Scheduler.Changed()
	a.announcer.Announce(scheduleTopic)
}
