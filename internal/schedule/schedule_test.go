package schedule

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/schedule/cronspec"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

const ci = `
nightly:
  script: echo nightly $NIGHTLY_MODE
  only: [schedules]
build:
  script: echo build
  except: [schedules]
`

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type fixture struct {
	st        *store.Store
	engine    *pipeline.Engine
	box       *secrets.Box
	project   *store.Project
	root, dev *store.User
	clock     *clock
}

// repoDir builds a bare repository group/app with main and feature branches.
func repoDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repos, err := gitrepo.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer repos.Close()
	if err := repos.Create(context.Background(), "group/app"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@e", "GIT_CONFIG_NOSYSTEM=1", "HOME="+work)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, ".gitlab-ci.yml"), []byte(ci), 0o644)
	run("add", "-A")
	run("commit", "-qm", "init")
	run("branch", "feature")
	run("push", "-q", filepath.Join(dir, "group", "app.git"), "main", "feature")
	return dir
}

// newFixture opens a store at dsn (SQLite path or PostgreSQL DSN with
// schema) and seeds users and a project unless seeded is false.
func newFixture(t *testing.T, st *store.Store, reposDir string, seed bool) *fixture {
	t.Helper()
	ctx := context.Background()
	repos, err := gitrepo.New(reposDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repos.Close() })
	box, _ := secrets.New(make([]byte, 32))
	f := &fixture{st: st, box: box, clock: &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}}
	f.engine = &pipeline.Engine{Store: st, Repos: repos, Secrets: box, ExternalURL: "http://kiln.test"}
	if !seed {
		return f
	}
	f.root = &store.User{Username: "root", IsAdmin: true}
	f.dev = &store.User{Username: "dev"}
	g := &store.Namespace{Name: "group", Path: "group", FullPath: "group", Visibility: "private"}
	f.project = &store.Project{Name: "app", Path: "app", FullPath: "group/app", Visibility: "private", DefaultBranch: "main"}
	err = st.Write(ctx, func(tx *store.Tx) error {
		for _, u := range []*store.User{f.root, f.dev} {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		}
		if err := tx.CreateGroup(ctx, g, f.root.ID); err != nil {
			return err
		}
		f.project.NamespaceID, f.project.CreatorID = g.ID, f.root.ID
		if err := tx.CreateProject(ctx, f.project); err != nil {
			return err
		}
		return tx.SetProjectMember(ctx, f.project.ID, f.dev.ID, store.Developer)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sqliteFixture(t *testing.T) *fixture {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFixture(t, st, repoDir(t), true)
}

func (f *fixture) scheduler() *Scheduler {
	s := New(f.st, f.engine, f.box, nil)
	s.Now = f.clock.Now
	return s
}

// addSchedule creates a schedule whose next run is computed from the clock.
func (f *fixture) addSchedule(t *testing.T, ref, cron, zone string, owner *store.User, active bool, vars map[string]string) *store.Schedule {
	t.Helper()
	ctx := context.Background()
	next, err := cronspec.Next(cron, zone, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	sc := &store.Schedule{ProjectID: f.project.ID, Description: "nightly", Ref: ref, Cron: cron, CronTimezone: zone, Active: active, OwnerID: owner.ID, NextRunAt: next}
	err = f.st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateSchedule(ctx, sc); err != nil {
			return err
		}
		for k, v := range vars {
			if err := tx.CreateScheduleVariable(ctx, sc.ID, store.ScheduleVariable{Key: k, ValueEnc: f.box.Seal(v), VariableType: "env_var"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func (f *fixture) pipelines(t *testing.T, scheduleID int64) []*store.Pipeline {
	t.Helper()
	pls, _, err := f.st.ListPipelines(context.Background(), store.PipelineFilter{ProjectID: f.project.ID, ScheduleID: scheduleID}, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	return pls
}

func (f *fixture) reload(t *testing.T, id int64) *store.Schedule {
	t.Helper()
	sc, err := f.st.ScheduleByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestFiresDueScheduleOnceWithVariables(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	s := f.scheduler()
	sc := f.addSchedule(t, "refs/heads/main", "30 0 * * *", "Europe/Berlin", f.root, true, map[string]string{"NIGHTLY_MODE": "full"})
	if want := time.Date(2024, 5, 1, 22, 30, 0, 0, time.UTC); !sc.NextRunAt.Equal(want) {
		t.Fatalf("next_run_at %v, want %v", sc.NextRunAt, want)
	}
	// Not due yet.
	f.clock.Set(sc.NextRunAt.Add(-time.Second))
	if n, err := s.RunDue(ctx); err != nil || n != 0 {
		t.Fatalf("early RunDue = %d, %v", n, err)
	}
	f.clock.Set(sc.NextRunAt.Add(300 * time.Millisecond))
	if n, err := s.RunDue(ctx); err != nil || n != 1 {
		t.Fatalf("RunDue = %d, %v", n, err)
	}
	if n, _ := s.RunDue(ctx); n != 0 {
		t.Fatalf("second RunDue fired %d", n)
	}
	pls := f.pipelines(t, sc.ID)
	if len(pls) != 1 || pls[0].Source != "schedule" || pls[0].UserID != f.root.ID || pls[0].Ref != "main" {
		t.Fatalf("pipelines %+v", pls)
	}
	jobs, _ := f.st.JobsOfPipeline(ctx, pls[0].ID)
	if len(jobs) != 1 || jobs[0].Name != "nightly" {
		t.Fatalf("jobs %+v", jobs)
	}
	pv, _ := f.st.PipelineVariables(ctx, pls[0].ID)
	if len(pv) != 1 || pv[0].Key != "NIGHTLY_MODE" {
		t.Fatalf("pipeline variables %+v", pv)
	}
	if v, _ := f.box.Open(pv[0].ValueEnc); v != "full" {
		t.Fatalf("variable value %q", v)
	}
	got := f.reload(t, sc.ID)
	if got.LastPipelineID != pls[0].ID || got.LastError != "" || !got.NextRunAt.Equal(time.Date(2024, 5, 2, 22, 30, 0, 0, time.UTC)) {
		t.Fatalf("schedule after run %+v", got)
	}
	runs, _ := f.st.ScheduleRuns(ctx, sc.ID, 10)
	if len(runs) != 1 || runs[0].Result != store.RunCreated || runs[0].PipelineID != pls[0].ID || runs[0].Kind != store.RunCron {
		t.Fatalf("runs %+v", runs)
	}
}

func TestMissedRunsFireOnceAfterDowntime(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	s := f.scheduler()
	sc := f.addSchedule(t, "main", "*/5 * * * *", "UTC", f.root, true, nil)
	// The server was down for three hours: 36 slots passed.
	f.clock.Set(sc.NextRunAt.Add(3*time.Hour + 2*time.Minute))
	if n, err := s.RunDue(ctx); err != nil || n != 1 {
		t.Fatalf("RunDue = %d, %v", n, err)
	}
	if n, _ := s.RunDue(ctx); n != 0 {
		t.Fatalf("fired again: %d", n)
	}
	if pls := f.pipelines(t, sc.ID); len(pls) != 1 {
		t.Fatalf("%d pipelines, want 1", len(pls))
	}
	got := f.reload(t, sc.ID)
	if want := sc.NextRunAt.Add(3*time.Hour + 5*time.Minute); !got.NextRunAt.Equal(want) {
		t.Fatalf("next_run_at %v, want %v (counted from now)", got.NextRunAt, want)
	}
}

func TestInactiveOwnerlessAndFailingSchedules(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	s := f.scheduler()
	inactive := f.addSchedule(t, "main", "* * * * *", "UTC", f.root, false, nil)
	devOwned := f.addSchedule(t, "feature", "* * * * *", "UTC", f.dev, true, nil)
	devOnProtected := f.addSchedule(t, "main", "* * * * *", "UTC", f.dev, true, nil)
	badRef := f.addSchedule(t, "refs/heads/gone", "* * * * *", "UTC", f.root, true, nil)

	f.clock.Set(f.clock.Now().Add(time.Minute))
	if _, err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.pipelines(t, inactive.ID)); n != 0 {
		t.Fatalf("inactive schedule made %d pipelines", n)
	}
	if n := len(f.pipelines(t, devOwned.ID)); n != 1 {
		t.Fatalf("developer's schedule on an unprotected branch made %d pipelines", n)
	}
	if got := f.reload(t, devOnProtected.ID); got.LastError == "" || len(f.pipelines(t, devOnProtected.ID)) != 0 {
		t.Fatalf("developer on protected main: %+v", got)
	}
	got := f.reload(t, badRef.ID)
	if got.LastError != "Reference not found" || !got.NextRunAt.After(f.clock.Now()) {
		t.Fatalf("failing schedule %+v", got)
	}

	// The developer loses access: the schedule is skipped, marked, and advanced.
	if err := f.st.Write(ctx, func(tx *store.Tx) error { return tx.RemoveProjectMember(ctx, f.project.ID, f.dev.ID) }); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(f.clock.Now().Add(time.Minute))
	if _, err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	got = f.reload(t, devOwned.ID)
	if len(f.pipelines(t, devOwned.ID)) != 1 || got.LastError == "" || !got.NextRunAt.After(f.clock.Now()) {
		t.Fatalf("ownerless schedule %+v", got)
	}
	runs, _ := f.st.ScheduleRuns(ctx, devOwned.ID, 10)
	if len(runs) != 2 || runs[0].Result != store.RunSkipped || runs[1].Result != store.RunCreated {
		t.Fatalf("runs %+v", runs)
	}
	// A successful run clears the mark again (after a maintainer takes over).
	got.OwnerID = f.root.ID
	if err := f.st.Write(ctx, func(tx *store.Tx) error { return tx.UpdateSchedule(ctx, got) }); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(f.clock.Now().Add(time.Minute))
	s.RunDue(ctx)
	if got = f.reload(t, devOwned.ID); got.LastError != "" || len(f.pipelines(t, devOwned.ID)) != 2 {
		t.Fatalf("after take-over %+v", got)
	}
}

func TestPlay(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	s := f.scheduler()
	sc := f.addSchedule(t, "main", "0 0 1 1 *", "UTC", f.root, true, map[string]string{"A": "1"})
	pl, err := s.Play(ctx, sc, f.root)
	if err != nil || pl.Source != "schedule" {
		t.Fatalf("Play = %+v, %v", pl, err)
	}
	got := f.reload(t, sc.ID)
	if got.LastPipelineID != pl.ID || !got.NextRunAt.Equal(sc.NextRunAt) {
		t.Fatalf("after play %+v", got)
	}
	// A developer may not play on protected main.
	if _, err := s.Play(ctx, sc, f.dev); err == nil {
		t.Fatal("developer played a schedule on a protected branch")
	}
}

// fakeTimer hands out channels the test fires by hand and records waits.
type fakeTimer struct {
	mu    sync.Mutex
	waits chan time.Duration
	fire  chan time.Time
}

func (ft *fakeTimer) timer(d time.Duration) (<-chan time.Time, func() bool) {
	ft.waits <- d
	return ft.fire, func() bool { return true }
}

func TestRunLoopSleepsUntilDueAndWakesOnChange(t *testing.T) {
	f := sqliteFixture(t)
	s := f.scheduler()
	ft := &fakeTimer{waits: make(chan time.Duration, 10), fire: make(chan time.Time)}
	s.Timer = ft.timer
	s.MaxSleep = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	wait := func() time.Duration {
		select {
		case d := <-ft.waits:
			return d
		case <-time.After(5 * time.Second):
			t.Fatal("the loop did not sleep")
		}
		return 0
	}
	if d := wait(); d != time.Hour {
		t.Fatalf("idle sleep %v, want MaxSleep", d)
	}
	// A new schedule due in 90 s: the API pokes, the loop sleeps 90 s.
	f.clock.Set(time.Date(2024, 5, 1, 12, 0, 30, 0, time.UTC))
	sc := f.addSchedule(t, "main", "2 12 * * *", "UTC", f.root, true, nil)
	s.Changed()
	if d := wait(); d != 90*time.Second {
		t.Fatalf("sleep %v, want 90s", d)
	}
	// Time passes; the timer fires; the schedule runs and the loop sleeps a day.
	f.clock.Set(sc.NextRunAt.Add(10 * time.Millisecond))
	ft.fire <- f.clock.Now()
	if d := wait(); d != time.Hour {
		t.Fatalf("sleep after firing %v", d)
	}
	if n := len(f.pipelines(t, sc.ID)); n != 1 {
		t.Fatalf("%d pipelines", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}

// TestExactlyOncePostgres races two schedulers, each with its own
// connection pool as two servers would have, over the same due schedules.
func TestExactlyOncePostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	schema := testenv.UniqueName("kiln_sched")
	open := func() *store.Store {
		st, err := store.Open(ctx, dsn, nil, store.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st1 := open()
	st2 := open()
	t.Cleanup(func() { st1.DropSchema(ctx); st1.Close(); st2.Close() })
	repos := repoDir(t)
	f1 := newFixture(t, st1, repos, true)
	f2 := newFixture(t, st2, repos, false)
	f2.project, f2.clock = f1.project, f1.clock

	const n = 12
	var ids []int64
	for i := 0; i < n; i++ {
		ids = append(ids, f1.addSchedule(t, "main", "* * * * *", "UTC", f1.root, true, map[string]string{"I": "x"}).ID)
	}
	s1, s2 := f1.scheduler(), f2.scheduler()
	s1.Batch, s2.Batch = 5, 5
	const slots = 3
	total := 0
	for slot := 1; slot <= slots; slot++ {
		f1.clock.Set(time.Date(2024, 5, 1, 12, slot, 0, 0, time.UTC))
		var wg sync.WaitGroup
		var fired [2]int
		var errs [2]error
		for i, s := range []*Scheduler{s1, s2} {
			wg.Add(1)
			go func() { defer wg.Done(); fired[i], errs[i] = s.RunDue(ctx) }()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("slot %d: %v %v", slot, errs[0], errs[1])
		}
		total += fired[0] + fired[1]
		t.Logf("slot %d: instance 1 fired %d, instance 2 fired %d", slot, fired[0], fired[1])
	}
	if total != n*slots {
		t.Fatalf("fired %d runs, want %d", total, n*slots)
	}
	for _, id := range ids {
		if pls := f1.pipelines(t, id); len(pls) != slots {
			t.Fatalf("schedule %d has %d pipelines, want %d", id, len(pls), slots)
		}
	}
}

func TestMinIntervalBetweenRuns(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	s := f.scheduler()
	s.MinInterval = 5 * time.Minute
	sc := f.addSchedule(t, "main", "* * * * *", "UTC", f.root, true, nil)
	f.clock.Set(sc.NextRunAt)
	if n, err := s.RunDue(ctx); err != nil || n != 1 {
		t.Fatalf("RunDue = %d, %v", n, err)
	}
	got := f.reload(t, sc.ID)
	if d := got.NextRunAt.Sub(sc.NextRunAt); d < 5*time.Minute || d > 6*time.Minute {
		t.Fatalf("every-minute schedule next runs after %v, want 5m", d)
	}
	// Nothing fires in between.
	for i := 1; i < 5; i++ {
		f.clock.Set(sc.NextRunAt.Add(time.Duration(i) * time.Minute))
		if n, _ := s.RunDue(ctx); n != 0 {
			t.Fatalf("fired %d minutes after the last run", i)
		}
	}
}

func TestScheduleLimitPerProject(t *testing.T) {
	f := sqliteFixture(t)
	for i := 0; i < store.MaxSchedulesPerProject; i++ {
		f.addSchedule(t, "main", "0 3 * * *", "UTC", f.root, true, nil)
	}
	sc := &store.Schedule{ProjectID: f.project.ID, OwnerID: f.root.ID, Ref: "refs/heads/main", Cron: "0 3 * * *", CronTimezone: "UTC", Active: true, NextRunAt: time.Now()}
	err := f.st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateSchedule(context.Background(), sc) })
	var le *store.LimitError
	if !errors.As(err, &le) || le.Message != "Maximum number of ci pipeline schedules (50) exceeded" {
		t.Fatalf("51st schedule: %v", err)
	}
}
