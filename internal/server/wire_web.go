package server

import (
	"context"

	"github.com/kilnci/kiln/internal/web"
)

// wireWeb builds the browser UI, which serves every path no other handler
// claims, and lets the REST API accept its session cookie for reads.
func (s *Server) wireWeb(ctx context.Context) error {
	// The runner area's log store (wired before us): the UI reads live
	// logs from the database and finished ones from the blob store.
	tr := s.api.Runners.Traces
	d := web.Deps{
		Store: s.store, Repos: s.repos, Engine: s.engine, Secrets: s.secrets, Log: s.log,
		ExternalURL: s.cfg.ExternalURL, Throttle: s.throttle,
	}
	if tr != nil {
		d.ReadTrace, d.OpenTrace = tr.ReadAt, tr.Open
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
