package server

import (
	"context"
	"path/filepath"

	"github.com/kilnci/kiln/internal/traces"
	"github.com/kilnci/kiln/internal/web"
)

// wireWeb builds the browser UI, which serves every path no other handler
// claims, and lets the REST API accept its session cookie for reads.
func (s *Server) wireWeb(ctx context.Context) error {
	// A second handle on the trace directory: the UI only opens files for
	// reading, and the runner area keeps its writer to itself.
	tr, err := traces.New(filepath.Join(s.cfg.DataDir, "traces"), s.cfg.MaxTraceSize)
	if err != nil {
		return err
	}
	d := web.Deps{
		Store: s.store, Repos: s.repos, Engine: s.engine, Secrets: s.secrets, Log: s.log,
		ExternalURL: s.cfg.ExternalURL, Throttle: s.throttle,
		ReadTrace: func(ctx context.Context, jobID, offset int64, max int) ([]byte, int64, error) {
			return tr.ReadAt(jobID, offset, max)
		},
	}
	// The schedules area's scheduler (wired before us) plays schedules and
	// wakes its loop when one is saved.
	if sc := s.api.Schedules; sc != nil {
		d.PlaySchedule, d.ScheduleChanged = sc.Play, sc.Changed
	}
	d.Webhooks = s.api.Webhooks
	w, err := web.New(d)
	if err != nil {
		return err
	}
	s.web = w
	s.api.SessionUser = w.SessionUser
	return nil
}
