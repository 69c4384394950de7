package server

import (
	"context"
	"io"
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
		ExternalURL: s.cfg.ExternalURL,
		ReadTrace: func(ctx context.Context, jobID, offset int64, max int) ([]byte, int64, error) {
			rc, size, err := tr.Open(jobID)
			if err != nil {
				return nil, 0, err
			}
			defer rc.Close()
			if max <= 0 || offset >= size {
				return nil, size, nil
			}
			// The reader does not seek; skipping reads from the page cache.
			if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
				return nil, size, err
			}
			buf := make([]byte, min(int64(max), size-offset))
			n, err := io.ReadFull(rc, buf)
			if err == io.ErrUnexpectedEOF {
				err = nil
			}
			return buf[:n], size, err
		},
	}
	// The schedules area's scheduler (wired before us) plays schedules and
	// wakes its loop when one is saved.
	if sc := s.api.Schedules; sc != nil {
		d.PlaySchedule, d.ScheduleChanged = sc.Play, sc.Changed
	}
	w, err := web.New(d)
	if err != nil {
		return err
	}
	s.web = w
	s.api.SessionUser = w.SessionUser
	return nil
}
