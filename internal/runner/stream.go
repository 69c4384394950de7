package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

// traceStreamer sends a job's trace to the server incrementally and
// performs the final state update.
type traceStreamer struct {
	c     *client.Client
	id    int64
	token string
	buf   *traceBuffer
	log   *slog.Logger
	// onStatus receives Job-Status values asking to stop the job:
	// "canceling" (graceful) or "canceled" (abort).
	onStatus func(status string)

	// keepAlive is how long the job may go without contact with the
	// server (GitLab Runner's 30 s force-send interval) unless the server
	// asks for status checks more often (client.StatusIntervalHeader).
	keepAlive time.Duration

	mu          sync.Mutex
	sent        int64
	gone        bool // server said 404 or 403: sending more is pointless
	lastContact time.Time
	statusEvery time.Duration // 0: keepAlive
}

// noteStatusInterval records the status-check interval a server answer
// asked for (0: none asked; the last one wins). Called with s.mu held.
func (s *traceStreamer) noteStatusInterval(d time.Duration) {
	if d > 0 {
		s.statusEvery = max(d, minStatusInterval)
	}
}

// minStatusInterval bounds how often a job asks for its status, whatever
// a server says.
const minStatusInterval = 100 * time.Millisecond

// contactEvery is how long the job may stay silent before it asks the
// server whether it should go on.
func (s *traceStreamer) contactEvery() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statusEvery > 0 && s.statusEvery < s.keepAlive {
		return s.statusEvery
	}
	return s.keepAlive
}

func (s *traceStreamer) status(st string) {
	switch st {
	case "canceling":
		s.onStatus("canceling")
	case "canceled", "failed":
		s.onStatus("canceled")
	}
}

// flush sends everything not yet sent, in chunks of at most MaxPatchSize.
// Only chunks that make no progress count against the retry bound: a long
// log is sent to its end, however many chunks that takes.
func (s *traceStreamer) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tries := 0; !s.gone && tries < 64; {
		chunk := s.buf.FromN(s.sent, client.MaxPatchSize)
		if len(chunk) == 0 {
			return nil
		}
		prev := s.sent
		res, err := s.c.PatchTrace(ctx, s.id, s.token, chunk, s.sent)
		s.noteStatusInterval(res.StatusInterval)
		s.status(res.JobStatus)
		switch res.State {
		case client.PatchSucceeded:
			s.sent = min(res.NewOffset, s.buf.Len())
			s.lastContact = time.Now()
			if s.sent <= prev {
				tries++
			}
		case client.PatchRangeMismatch:
			tries++
			s.log.Debug("trace range mismatch, resuming", "at", res.NewOffset, "was", s.sent)
			s.sent = min(res.NewOffset, s.buf.Len())
		case client.PatchAbort:
			s.gone = true
			s.onStatus("canceled")
			return nil
		case client.PatchNotFound:
			s.gone = true
			return nil
		default:
			return err
		}
	}
	return nil
}

// touch tells a silent job's server that it is alive (GitLab Runner's
// keep-alive, a state=running update) and learns about cancellation, which
// otherwise only arrives in PATCH responses.
func (s *traceStreamer) touch(ctx context.Context) {
	s.mu.Lock()
	if s.sent != s.buf.Len() {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	ck, size := s.buf.Checksum()
	res, err := s.c.UpdateJob(ctx, s.id, s.token, client.UpdateJobRequest{
		State: client.StateRunning, Output: client.JobTraceOutput{Checksum: ck, Bytesize: size},
	})
	if err != nil {
		s.log.Debug("keep-alive update failed", "err", err)
		return
	}
	s.mu.Lock()
	s.lastContact = time.Now()
	s.noteStatusInterval(res.StatusInterval)
	s.mu.Unlock()
	s.status(res.JobStatus)
	if res.State == client.UpdateAbort {
		s.onStatus("canceled")
	}
}

// run sends new log output every interval and, when the job has had no
// contact with the server for contactEvery, a keep-alive that also asks
// whether the job was canceled.
func (s *traceStreamer) run(ctx context.Context, interval time.Duration) {
	s.mu.Lock()
	s.lastContact = time.Now()
	s.mu.Unlock()
	for {
		tick := min(interval, s.contactEvery())
		if !sleepCtx(ctx, tick) {
			return
		}
		if err := s.flush(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("trace patch failed", "err", err)
		}
		s.mu.Lock()
		idle := time.Since(s.lastContact)
		s.mu.Unlock()
		// Ticks and answers do not line up exactly: a contact made just
		// after the previous tick must not push the check a whole tick on.
		if every := s.contactEvery(); idle+tick/4 >= every {
			s.touch(ctx)
		}
	}
}

// finish flushes the whole trace and sends the final state, retrying until
// the server accepts it or ctx ends: a finished job's result must not be
// lost because the server is restarting.
func (s *traceStreamer) finish(ctx context.Context, upd client.UpdateJobRequest) {
	bo := backoff{min: 500 * time.Millisecond, max: backoffMax}
	resets := 0
	for ctx.Err() == nil {
		s.buf.Flush()
		if err := s.flush(ctx); err != nil {
			d := bo.next()
			s.log.Warn("sending trace failed", "err", err, "retry_in", d)
			sleepCtx(ctx, d)
			continue
		}
		ck, size := s.buf.Checksum()
		upd.Checksum = ck
		upd.Output = client.JobTraceOutput{Checksum: ck, Bytesize: size}
		res, err := s.c.UpdateJob(ctx, s.id, s.token, upd)
		switch res.State {
		case client.UpdateSucceeded:
			s.log.Info("job finished", "state", upd.State, "failure_reason", upd.FailureReason)
			return
		case client.UpdateAbort:
			s.log.Info("server no longer accepts updates for the job", "status", res.StatusCode, "job_status", res.JobStatus)
			return
		case client.UpdateAcceptedNotCompleted:
			d := res.Interval
			if d <= 0 {
				d = time.Second
			}
			sleepCtx(ctx, min(d, backoffMax))
		case client.UpdateTraceValidationFailed:
			resets++
			s.log.Warn("server trace checksum differs, re-sending the whole trace", "attempt", resets)
			s.mu.Lock()
			s.sent = 0
			s.gone = false
			s.mu.Unlock()
			if resets > 3 {
				sleepCtx(ctx, bo.next())
			}
		default:
			d := bo.next()
			s.log.Warn("final job update failed", "err", err, "retry_in", d)
			sleepCtx(ctx, d)
		}
	}
	s.log.Error("giving up reporting the job result", "state", upd.State)
}
