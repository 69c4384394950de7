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
	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/runner"
	"github.com/kilnci/kiln/internal/runnerapi"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/traces"
)

// wireRunners builds the runner protocol: wake-ups, trace and artifact
// storage, the protocol routes, the liveness loop and the built-in runners.
func (s *Server) wireRunners(ctx context.Context) error {
	tr, err := traces.New(filepath.Join(s.cfg.DataDir, "traces"), s.cfg.MaxTraceSize)
	if err != nil {
		return err
	}
	ar, err := artifacts.New(filepath.Join(s.cfg.DataDir, "artifacts"), s.cfg.MaxArtifactsSize)
	if err != nil {
		return err
	}
	var notifier queue.Notifier = queue.NewMemory()
	if s.store.Dialect == store.Postgres {
		pg := queue.NewPostgres(s.cfg.Database, s.store.DB(), s.log)
		s.closers = append(s.closers, pg.Close)
		notifier = pg
	}
	metrics := runnerapi.NewMetrics(s.metrics)
	svc := runnerapi.New(runnerapi.Config{
		Store: s.store, Engine: s.engine, Repos: s.repos, Notifier: notifier, Traces: tr, Artifacts: ar,
		ExternalURL: s.cfg.ExternalURL, Log: s.log, StaleTimeout: s.cfg.RunnerStaleTimeout, Metrics: metrics,
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

	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	var loopWG sync.WaitGroup
	loopWG.Go(func() { svc.Run(loopCtx) })
	s.onShutdown = append(s.onShutdown, svc.Shutdown)
	s.closers = append(s.closers, func() {
		svc.Shutdown()
		stopLoop()
		loopWG.Wait()
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
	suffix := builtinSuffix(s.cfg.DataDir)
	// Rows of a previous run of this server (and long-dead ones of any
	// replica) go; their jobs are failed by the liveness loop.
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
		wg      sync.WaitGroup
	)
	s.onServe = append(s.onServe, func(addr net.Addr) {
		url := "http://" + loopback(addr)
		runCtx, c := context.WithCancel(context.Background())
		mu.Lock()
		cancel = c
		mu.Unlock()
		for i, tok := range tokens {
			r := runner.New(runner.Config{
				URL: url, Token: tok, Name: "kiln-builtin-" + strconv.Itoa(i+1), Concurrent: 1,
				BuildsDir:     filepath.Join(s.builtinBuildsDir(), strconv.Itoa(i+1)),
				CacheDir:      s.builtinCacheDir(),
				Executor:      executor,
				CheckInterval: -1, // long-polling is the wait
				// The agent's log limit follows --max-trace-size (its log is
				// spooled to a temporary file, not kept in the server's memory).
				TraceLimit: s.maxTraceSize(),
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
	})
	stop := func() {
		mu.Lock()
		c, rs := cancel, running
		cancel, running = nil, nil
		mu.Unlock()
		if c == nil {
			return
		}
		// Stop polling, kill running jobs and let them report while the
		// server still answers; bounded so shutdown stays prompt.
		c()
		for _, r := range rs {
			r.Abort()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.log.Warn("built-in runners did not stop within 10s")
		}
	}
	s.beforeShutdown = append(s.beforeShutdown, stop)
	s.closers = append(s.closers, stop)
	return nil
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
	ex := runner.SandboxExecutor{Hide: []string{dataDir}}
	if err := ex.Check(ctx); err != nil {
		s.log.Error("built-in runners cannot sandbox jobs", "err", err)
		return nil, fmt.Errorf("built-in runners refuse to run jobs unsandboxed: %w; "+
			"install bubblewrap (Debian: apt-get install bubblewrap) on a kernel with user namespaces, "+
			"or start with --builtin-runners=0 and use external runners, "+
			"or accept that any job can read the data dir with --builtin-runners-unsafe (KILN_BUILTIN_RUNNERS_UNSAFE=1)", err)
	}
	s.log.Info("built-in runners run jobs in a sandbox", "executor", ex.Name(), "hidden", dataDir)
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
