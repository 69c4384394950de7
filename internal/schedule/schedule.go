// Package schedule runs pipeline schedules: a loop that sleeps until the
// earliest next_run_at of any active schedule, wakes early when a schedule
// changes, and fires each due schedule exactly once even when several
// servers share one PostgreSQL database.
//
// Exactly once: a server fires a due time only after a conditional UPDATE
// (next_run_at = <next> WHERE next_run_at = <due>) succeeds, in the same
// transaction that logs the run; a concurrent server's UPDATE then matches no
// row. The pipeline is created after that commit, so a crash in between
// loses that one run rather than duplicating it.
package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/schedule/cronspec"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

// Timer waits for d; stop releases it early. Tests substitute a fake.
type Timer func(d time.Duration) (c <-chan time.Time, stop func() bool)

func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Scheduler fires due schedules. Build it with New.
type Scheduler struct {
	Store   *store.Store
	Engine  *pipeline.Engine
	Secrets *secrets.Box
	Log     *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Timer sleeps (nil: time.NewTimer).
	Timer Timer
	// MaxSleep bounds one sleep (default 1m). The server that took a
	// change wakes its loop at once (Changed); on PostgreSQL it announces
	// the change over LISTEN/NOTIFY and the other replicas wake at once
	// too. The bound is the backstop for a lost announcement.
	MaxSleep time.Duration
	// Batch is how many due schedules one query fetches (default 100).
	Batch int
	// MinInterval is the shortest time between two runs of one schedule
	// (0: none). Like GitLab's schedule worker, a schedule due more often
	// runs at its first slot at least MinInterval after its last run.
	MinInterval time.Duration

	wake chan struct{}
}

// New returns a scheduler over st that creates pipelines with engine.
func New(st *store.Store, engine *pipeline.Engine, box *secrets.Box, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{Store: st, Engine: engine, Secrets: box, Log: log, wake: make(chan struct{}, 1)}
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Changed wakes the loop to re-read the earliest due time; the API calls
// it after creating, editing or deleting a schedule. It never blocks.
func (s *Scheduler) Changed() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run fires schedules until ctx is cancelled.
func (s *Scheduler) Run(ctx context.Context) {
	timer := s.Timer
	if timer == nil {
		timer = realTimer
	}
	maxSleep := s.MaxSleep
	if maxSleep <= 0 {
		maxSleep = time.Minute
	}
	for ctx.Err() == nil {
		wait := maxSleep
		if _, err := s.RunDue(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Error("pipeline schedules: firing due schedules failed", "err", err)
			wait = 5 * time.Second
		} else if next, ok, err := s.Store.NextScheduleRun(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Error("pipeline schedules: reading the next due time failed", "err", err)
			wait = 5 * time.Second
		} else if ok {
			if d := next.Sub(s.now()); d < wait {
				wait = max(d, 0)
			}
		}
		c, stop := timer(wait)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-s.wake:
			stop()
		case <-c:
		}
	}
}

// RunDue fires every schedule due at the current time and returns how many
// this instance fired (claims lost to another server are not counted).
func (s *Scheduler) RunDue(ctx context.Context) (int, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = 100
	}
	now := s.now()
	fired := 0
	for {
		due, err := s.Store.DueSchedules(ctx, now, batch)
		if err != nil {
			return fired, err
		}
		for _, sc := range due {
			if err := ctx.Err(); err != nil {
				return fired, err
			}
			ok, err := s.fire(ctx, sc, now)
			if err != nil {
				return fired, err
			}
			if ok {
				fired++
			}
		}
		// Every schedule fetched has moved past now (fired, lost to another
		// server, or deactivated), so the next query makes progress.
		if len(due) < batch {
			return fired, nil
		}
	}
}

// fire claims sc's due time and, if this instance won, runs it as its owner.
func (s *Scheduler) fire(ctx context.Context, sc *store.Schedule, now time.Time) (bool, error) {
	// The next run counts from now, not from the missed due time: after
	// downtime a schedule fires once, not once per missed slot.
	next, err := cronspec.Next(sc.Cron, sc.CronTimezone, now)
	if err == nil && s.MinInterval > 0 && next.Before(now.Add(s.MinInterval)) {
		next, err = cronspec.Next(sc.Cron, sc.CronTimezone, now.Add(s.MinInterval-time.Second))
	}
	if err != nil {
		// Only possible if the tz database changed under a stored zone.
		reason := "The schedule was deactivated: its cron expression or time zone is no longer valid"
		s.Log.Warn("pipeline schedule deactivated", "schedule", sc.ID, "cron", sc.Cron, "zone", sc.CronTimezone, "err", err)
		return false, s.Store.Write(ctx, func(tx *store.Tx) error {
			return tx.SetScheduleNextRun(ctx, sc.ID, sc.NextRunAt, false, reason)
		})
	}
	var runID int64
	err = s.Store.Write(ctx, func(tx *store.Tx) error {
		var err error
		runID, err = tx.ClaimScheduleRun(ctx, sc, sc.NextRunAt, next, sc.OwnerID)
		return err
	})
	if err != nil || runID == 0 {
		return false, err
	}
	// The slot is ours: finish it even if shutdown begins meanwhile (one
	// pipeline creation), rather than leave a claimed run half done.
	ctx = context.WithoutCancel(ctx)
	owner, p, reason, err := s.runnable(ctx, sc, sc.OwnerID)
	if err != nil {
		return true, err
	}
	if reason != "" {
		s.Log.Info("pipeline schedule skipped", "schedule", sc.ID, "reason", reason)
		return true, s.finish(ctx, sc, runID, store.RunSkipped, reason, 0)
	}
	_, err = s.create(ctx, sc, p, owner, runID)
	var ce *pipeline.CreateError
	if errors.As(err, &ce) {
		err = nil // recorded as last_error; the loop goes on
	}
	return true, err
}

// Play runs sc now as u (GitLab's "Run schedule"), without moving its next
// run. The caller has checked that u may play it. A pipeline that cannot be
// created returns the *pipeline.CreateError, also recorded as last_error.
func (s *Scheduler) Play(ctx context.Context, sc *store.Schedule, u *store.User) (*store.Pipeline, error) {
	var runID int64
	err := s.Store.Write(ctx, func(tx *store.Tx) error {
		var err error
		runID, err = tx.StartPlayRun(ctx, sc, u.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	_, p, reason, err := s.runnable(ctx, sc, u.ID)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		if err := s.finish(ctx, sc, runID, store.RunSkipped, reason, 0); err != nil {
			return nil, err
		}
		return nil, &pipeline.CreateError{Messages: []string{reason}}
	}
	return s.create(ctx, sc, p, u, runID)
}

// runnable loads the project and the user a schedule runs as, and returns a
// reason when that user may not run it: GitLab's rule is Developer access,
// and Kiln's protected refs (the default branch included) need Maintainer.
func (s *Scheduler) runnable(ctx context.Context, sc *store.Schedule, userID int64) (*store.User, *store.Project, string, error) {
	p, err := s.Store.ProjectByID(ctx, sc.ProjectID)
	if err != nil {
		return nil, nil, "", err
	}
	u, err := s.Store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, p, "The schedule's owner no longer exists; a maintainer must take ownership", nil
	} else if err != nil {
		return nil, nil, "", err
	}
	if u.State != "active" {
		return u, p, fmt.Sprintf("The schedule's owner %s is %s; a maintainer must take ownership", u.Username, u.State), nil
	}
	level, err := access.New(s.Store).Level(ctx, p, u)
	if err != nil {
		return nil, nil, "", err
	}
	if !access.At(level, access.Developer) {
		return u, p, fmt.Sprintf("%s no longer has Developer access to the project; a maintainer must take ownership", u.Username), nil
	}
	// Protected refs: Engine.Create decides on the ref the run resolves to.
	return u, p, "", nil
}

// SplitRef turns a stored schedule ref into a short name and whether it
// names a tag ("refs/tags/v1" → "v1", true). Short refs count as branches.
func SplitRef(ref string) (name string, tag bool) {
	if n, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return n, true
	}
	return strings.TrimPrefix(ref, "refs/heads/"), false
}

// create makes the pipeline with the schedule's variables and records the outcome.
func (s *Scheduler) create(ctx context.Context, sc *store.Schedule, p *store.Project, u *store.User, runID int64) (*store.Pipeline, error) {
	vars, err := s.Variables(ctx, sc.ID)
	if err != nil {
		return nil, err
	}
	var inputs map[string]any
	if sc.Inputs != "" {
		if err := json.Unmarshal([]byte(sc.Inputs), &inputs); err != nil {
			return nil, err
		}
	}
	pl, err := s.Engine.Create(ctx, pipeline.Request{Project: p, Ref: sc.Ref, Source: "schedule", User: u, Variables: vars, ScheduleID: sc.ID, Inputs: inputs})
	var ce *pipeline.CreateError
	switch {
	case errors.As(err, &ce):
		s.Log.Info("pipeline schedule created no pipeline", "schedule", sc.ID, "project", p.FullPath, "reason", ce.Error())
		return nil, errors.Join(err, s.finish(ctx, sc, runID, store.RunFailed, ce.Error(), 0))
	case err != nil:
		s.Log.Error("pipeline schedule failed", "schedule", sc.ID, "project", p.FullPath, "err", err)
		if ferr := s.finish(ctx, sc, runID, store.RunFailed, "Internal error while creating the pipeline", 0); ferr != nil {
			return nil, errors.Join(err, ferr)
		}
		return nil, err
	}
	s.Log.Info("pipeline created", "project", p.FullPath, "pipeline", pl.ID, "source", "schedule", "schedule", sc.ID, "status", pl.Status)
	return pl, s.finish(ctx, sc, runID, store.RunCreated, "", pl.ID)
}

func (s *Scheduler) finish(ctx context.Context, sc *store.Schedule, runID int64, result, reason string, pipelineID int64) error {
	// Recorded even if the caller's context ended: the run already happened.
	ctx = context.WithoutCancel(ctx)
	return s.Store.Write(ctx, func(tx *store.Tx) error {
		return tx.FinishScheduleRun(ctx, sc.ID, runID, result, reason, pipelineID)
	})
}

// Variables decrypts a schedule's variables for a pipeline request.
func (s *Scheduler) Variables(ctx context.Context, scheduleID int64) ([]pipeline.Var, error) {
	stored, err := s.Store.ScheduleVariables(ctx, scheduleID)
	if err != nil {
		return nil, err
	}
	out := make([]pipeline.Var, 0, len(stored))
	for _, v := range stored {
		val, err := s.Secrets.Open(v.ValueEnc)
		if err != nil {
			return nil, fmt.Errorf("decrypt variable %s of schedule %d: %w", v.Key, scheduleID, err)
		}
		out = append(out, pipeline.Var{Key: v.Key, Value: val, File: v.VariableType == "file"})
	}
	return out, nil
}
