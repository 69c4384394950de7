package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/runner"
	"github.com/kilnci/kiln/internal/runnerapi"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/traces"
)

// wireRunners builds the runner protocol: wake-ups, trace and artifact
// storage, the protocol routes, the liveness loop and the built-in runners.
func (s *Server) wireRunners(ctx context.Context) error {
	// Live logs are chunks in the database (every replica reads them);
	// finished ones are archived to traces/<job id>.log in the object
	// store (the data dir by default, where older versions kept their log
	// files).
	tr := traces.New(s.store, s.blobs, s.cfg.MaxTraceSize)
	ar := artifacts.New(s.blobs, s.cfg.MaxArtifactsSize)
	var notifier queue.Notifier = queue.NewMemory()
	if s.store.Dialect == store.Postgres {
		pg := queue.NewPostgres(s.cfg.Database, s.store.DB(), s.log)
		// Every replica listens: it turns the others' NOTIFY into wake-ups
		// for its own long-polling runners.
		if err := s.loops.Add(lifecycle.Loop{Name: "notify-listener", Run: pg.Run}); err != nil {
			return err
		}
		notifier, s.announcer = pg, pg
	}
	metrics := runnerapi.NewMetrics(s.metrics)
	svc := runnerapi.New(runnerapi.Config{
		Store: s.store, Engine: s.engine, Repos: s.repos, Notifier: notifier, Traces: tr, Artifacts: ar,
		ExternalURL: s.cfg.ExternalURL, Log: s.log, StaleTimeout: s.cfg.RunnerStaleTimeout, AckTimeout: s.cfg.RunnerAckTimeout, Metrics: metrics,
		UserByToken: func(ctx context.Context, token string) (*store.User, error) {
			u, k, err := s.api.CheckToken(ctx, token)
			if err != nil {
				return nil, err
			}
			// Downloads are API reads: a token without api/read_api (say
			// read_repository only) must not fetch artifacts.
			if !k.HasScope("api") && !k.HasScope("read_api") {
				return nil, errors.New("insufficient scope")
			}
			return u, nil
		},
	})
	svc.Register(s.api.Mux())

	// Chain onto any JobsPending hook set before us.
	prev := s.engine.JobsPending
	s.engine.JobsPending = func() {
		if prev != nil {
			prev()
		}
		svc.JobsPending()
	}
	s.jobTokens = func(ctx context.Context, token string) (*store.User, int64, bool) {
		j, u, ok := svc.JobToken(ctx, token)
		if !ok {
			return nil, 0, false
		}
		return u, j.ProjectID, true
	}
	s.api.Runners.JobToken = svc.JobToken
	s.api.Runners.IsStuck = svc.IsStuck
	s.api.Runners.Traces = tr
	s.api.Runners.Artifacts = ar
	s.api.Runners.CreateRunner = svc.CreateRunner
	s.api.Runners.ResetRunnerToken = svc.ResetRunnerToken
	s.api.Runners.ResetRegistrationToken = svc.ResetRegistrationToken
	s.api.Runners.Changed = svc.RunnersChanged
	s.api.Runners.ServeArtifacts = func(w http.ResponseWriter, r *http.Request, j *store.Job) { runnerapi.ServeArtifacts(w, r, ar, j) }

	for _, l := range []lifecycle.Loop{
		// Per job claims (a conditional update) keep replicas from failing
		// one job twice, so every replica may run the reaper.
		{Name: "stale-jobs", Every: svc.StaleCheckEvery(), Run: svc.FailStaleJobs},
		{Name: "unacknowledged-jobs", Every: svc.AckCheckEvery(), Run: svc.RequeueUnacknowledged},
		{Name: "artifact-expiry", Every: time.Minute, Shared: true, Run: svc.ExpireArtifacts},
		// Archives the logs of finished jobs: kicked after each commit
		// that finished one (on whichever replica committed it), and
		// periodically for what a crash or a stopped replica left. Each
		// log is claimed on its own, so every replica may run it.
		{Name: "trace-archiver", Every: 30 * time.Second, Run: tr.ArchivePass},
	} {
		if err := s.loops.Add(l); err != nil {
			return err
		}
	}
	s.store.OnJobFinished(func() { s.loops.Kick("trace-archiver") })
	s.onShutdown = append(s.onShutdown, svc.Shutdown)
	s.closers = append(s.closers, func() {
		svc.Shutdown()
		svc.Wait()
	})
	return s.wireBuiltinRunners(ctx, svc)
}

// builtinSuffix marks this host's built-in runner rows, so that a restart
// replaces them without touching another replica's.
// maxTraceSize is the effective --max-trace-size.
func (s *Server) maxTraceSize() int64 {
	if s.cfg.MaxTraceSize > 0 {
		return s.cfg.MaxTraceSize
	}
	return traces.DefaultLimit
}

// The suffix is a digest of host name and data directory: it tells
// replicas apart without showing either to whoever can read the runner's
// description (any signed-in user, through GET /runners/:id).
func builtinSuffix(dataDir string) string {
	host, _ := os.Hostname()
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(host + ":" + abs))
	return fmt.Sprintf(" (%x)", sum[:6])
}

// builtinRunnerSuffix marks the built-in runner rows of this server: host,
// data directory and listen address, so that two replicas on one host
// sharing a data dir (they listen on different addresses) never take each
// other's rows, or jobs, for their own previous run's.
func builtinRunnerSuffix(dataDir, listen string) string {
	return builtinSuffix(dataDir + "\x00" + listen)
}

// wireBuiltinRunners registers fresh instance runners and starts them, over
// loopback HTTP like any runner, once the server listens.
func (s *Server) wireBuiltinRunners(ctx context.Context, svc *runnerapi.Service) error {
	n := s.cfg.BuiltinRunners
	if n < 0 {
		n = runtime.NumCPU()
	}
	var executor runner.Executor
	if n > 0 {
		var err error
		if executor, err = s.builtinExecutor(ctx); err != nil {
			return err
		}
		if executor, err = s.builtinContainers(ctx, executor); err != nil {
			return err
		}
	}
	suffix := builtinRunnerSuffix(s.cfg.DataDir, s.cfg.Listen)
	// Jobs that were running on this server's built-in runners died with
	// the previous process (the runners ran inside it): finish them now
	// rather than after the stale timeout.
	if err := s.failOrphanedBuiltinJobs(ctx, suffix); err != nil {
		return err
	}
	// Rows of a previous run of this server (and long-dead ones of any
	// replica) go; jobs of the long-dead ones are failed by the stale-jobs
	// loop.
	err := s.store.Write(ctx, func(tx *store.Tx) error {
		return tx.DeleteBuiltinRunners(ctx, suffix, time.Now().Add(-24*time.Hour))
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	tokens := make([]string, n)
	for i := range n {
		r := &store.Runner{Description: "built-in runner " + strconv.Itoa(i+1) + suffix, RunnerType: "instance_type", RunUntagged: true, Builtin: true}
		if tokens[i], err = svc.CreateRunner(ctx, r); err != nil {
			return err
		}
	}
	var (
		mu      sync.Mutex
		cancel  context.CancelFunc
		running []*runner.Runner
	)
	run := func(loopCtx context.Context) error {
		url := "http://" + loopback(s.listenAddr)
		runCtx, c := context.WithCancel(loopCtx)
		defer c()
		mu.Lock()
		cancel = c
		mu.Unlock()
		var wg sync.WaitGroup
		for i, tok := range tokens {
			r := runner.New(runner.Config{
				URL: url, Token: tok, Name: "kiln-builtin-" + strconv.Itoa(i+1), Concurrent: 1,
				BuildsDir:     filepath.Join(s.builtinBuildsDir(), strconv.Itoa(i+1)),
				CacheDir:      s.builtinCacheDir(),
				Cache:         s.builtinCacheStore(),
				Executor:      executor,
				CheckInterval: -1, // long-polling is the wait
				// The agent's log limit follows --max-trace-size (its log is
				// spooled to a temporary file, not kept in the server's memory).
				TraceLimit: s.maxTraceSize(),
				// The server's environment is the operator's (database
				// password, cloud credentials): jobs get only the basics.
				Environ: runner.MinimalEnviron(os.Environ()),
			}, s.log.With("builtin_runner", i+1))
			mu.Lock()
			running = append(running, r)
			mu.Unlock()
			wg.Go(func() {
				if err := r.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
					s.log.Error("built-in runner stopped", "runner", i+1, "err", err)
				}
			})
		}
		<-runCtx.Done()
		// Stop (below) aborted the jobs; give them a bounded time to
		// report so that shutdown stays prompt.
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.log.Warn("built-in runners did not stop within 10s")
		}
		return nil
	}
	// Stop polling, kill running jobs and let them report while the server
	// still answers (the lifecycle stops loops before the HTTP server).
	abort := func() {
		mu.Lock()
		c, rs := cancel, running
		cancel, running = nil, nil
		mu.Unlock()
		if c != nil {
			c() // no new job requests
		}
		for _, r := range rs {
			r.Abort()
		}
	}
	return s.loops.Add(lifecycle.Loop{Name: "builtin-runners", Run: run, Stop: abort})
}

// builtinExecutor is how built-in runners run jobs: in a sandbox that hides
// the data dir, unless the operator chose --builtin-runners-unsafe. When
// the sandbox does not work here, the server refuses to start and says why.
func (s *Server) builtinExecutor(ctx context.Context) (runner.Executor, error) {
	if s.cfg.BuiltinRunnersUnsafe {
		s.log.Warn("built-in runners run jobs WITHOUT a sandbox, as the server's own user (--builtin-runners-unsafe): " +
			"any job of any project can read and change the data dir (database, secrets.key, repositories)")
		return runner.ShellExecutor{}, nil
	}
	dataDir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	// The repositories and the secrets key may live outside the data dir
	// (--repositories-dir, --secrets-key-file): hidden too.
	hide := []string{dataDir}
	if s.cfg.RepositoriesDir != "" {
		if d, err := filepath.Abs(s.cfg.RepositoriesDir); err == nil {
			hide = append(hide, d)
		}
	}
	ex := runner.SandboxExecutor{Hide: hide}
	if s.cfg.SecretsKeyFile != "" {
		if f, err := filepath.Abs(s.cfg.SecretsKeyFile); err == nil {
			ex.Mask = append(runner.DefaultSandboxMask(), f)
		}
	}
	if err := ex.Check(ctx); err != nil {
		s.log.Error("built-in runners cannot sandbox jobs", "err", err)
		return nil, fmt.Errorf("built-in runners refuse to run jobs unsandboxed: %w; "+
			"install bubblewrap (Debian: apt-get install bubblewrap) on a kernel with user namespaces, "+
			"or start with --builtin-runners=0 and use external runners, "+
			"or accept that any job can read the data dir with --builtin-runners-unsafe (KILN_BUILTIN_RUNNERS_UNSAFE=1)", err)
	}
	s.log.Info("built-in runners run jobs in a sandbox", "executor", ex.Name(), "hidden", hide)
	return ex, nil
}

// loopback turns a listener address into one this process can dial.
func loopback(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// failOrphanedBuiltinJobs fails, with runner_system_failure (so that
// retry: {when: runner_system_failure} retries them), the jobs that were
// running on the built-in runners of this server's previous process. Each
// is claimed first, like the stale-jobs loop does, so that a concurrent
// reaper on another replica cannot finish it twice.
func (s *Server) failOrphanedBuiltinJobs(ctx context.Context, suffix string) error {
	jobs, err := s.store.RunningJobsOfBuiltinRunners(ctx, suffix)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		var won bool
		err := s.store.Write(ctx, func(tx *store.Tx) error {
			var err error
			won, err = tx.ClaimStaleJob(ctx, j.ID, j.Status, time.Now().Add(time.Hour))
			return err
		})
		if err != nil {
			return err
		}
		if !won {
			continue
		}
		final, err := s.engine.FinishJob(ctx, j.ID, "failed", "runner_system_failure", nil)
		if err != nil {
			return fmt.Errorf("failing job %d of a built-in runner of the previous run: %w", j.ID, err)
		}
		s.log.Warn("job was running on a built-in runner when the server stopped", "job", j.ID, "runner", j.RunnerID, "status", final)
	}
	return nil
}

// builtinCacheStore is where built-in runners keep job caches: in the
// object store when it is a bucket (so that the built-in runners of every
// replica, and external runners given the same bucket and no --cache-path,
// share them), else nil (<data-dir>/cache).
func (s *Server) builtinCacheStore() blob.Store {
	if s.cfg.ObjectStore == "s3" {
		return s.blobs
	}
	return nil
}
