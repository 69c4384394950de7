// Package server assembles Kiln: storage, repositories, the REST API, the
// runner protocol, the web UI and the built-in runners, behind one HTTP
// listener.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/httplimit"
	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/metrics"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

// Config holds `kiln server` settings.
type Config struct {
	Listen   string
	DataDir  string
	Database string // "" = SQLite file in DataDir
	// RepositoriesDir holds the git repositories ("" = <DataDir>/repositories).
	// Replicas that share one database must share this directory (a
	// shared volume); everything else in the data dir is per replica once
	// logs and artifacts are in the object store.
	RepositoriesDir string
	// SecretsKeyFile holds the key that seals CI/CD variables ("" =
	// <DataDir>/secrets.key, created on first start; KILN_SECRETS_KEY
	// overrides both). Every replica must use the same key; a server whose
	// key cannot open the database's key check refuses to start.
	SecretsKeyFile string
	ExternalURL    string // "" = derived from Listen
	// BuiltinRunners is how many runners run in-process (-1: number of CPUs).
	BuiltinRunners int
	// BuiltinRunnersUnsafe runs built-in runners' jobs without the sandbox,
	// as the server's own user: any job can then read and change the data
	// dir. Without it, built-in runners need a working sandbox (bubblewrap
	// and namespaces) and the server refuses to start otherwise.
	BuiltinRunnersUnsafe bool
	// BuiltinDocker says whether built-in runners run jobs that name an
	// image: in containers: "auto" (default: when an engine answers),
	// "on" (the server refuses to start without one) or "off".
	BuiltinDocker string
	// DockerHost is the container engine ("" = DOCKER_HOST or the
	// default sockets); DockerImage the image of jobs that name none
	// ("" = such jobs run with the host executor).
	DockerHost, DockerImage string
	// InitialRootToken and InitialRootPassword apply on first start only.
	InitialRootToken    string
	InitialRootPassword string
	// Credentials receives root's generated token and password on first
	// start, once the listener is bound (nil: a banner on stderr).
	Credentials func(c Credentials)
	// MaxBody bounds ordinary API request bodies.
	MaxBody int64
	// TriggerRateLimit bounds pipelines created through the trigger API per
	// project and minute (0: no limit).
	TriggerRateLimit int
	// RunnerStaleTimeout fails running jobs whose runner has not reported
	// for this long (0: 5 minutes).
	RunnerStaleTimeout time.Duration
	// RunnerAckTimeout requeues a job whose runner has not acknowledged it
	// (first update or trace) for this long after it was handed out
	// (0: 1 minute).
	RunnerAckTimeout time.Duration
	// MaxTraceSize cuts job logs beyond this many bytes (0: 100 MiB);
	// MaxArtifactsSize refuses larger artifact uploads (0: 100 MiB).
	MaxTraceSize, MaxArtifactsSize int64
	// MetricsAllow lists the CIDRs (comma-separated) that may read /metrics
	// ("": DefaultMetricsAllow, loopback only).
	MetricsAllow string
	// HTTP holds timeouts and connection caps (zero fields: defaults
	// derived from the descriptor limit).
	HTTP httplimit.Config
	// EventStreamMax bounds one pipeline event stream (0: 30 minutes).
	EventStreamMax time.Duration
	// ObjectStore is where artifacts and finished job logs live: "" or
	// "disk" (files under DataDir), or "s3" (the bucket S3 describes).
	ObjectStore string
	S3          blob.S3Config
}

// PushHook is called after a push changed refs.
type PushHook func(ctx context.Context, p *store.Project, u *store.User, updates []gitrepo.RefUpdate)

// Server is a running Kiln instance.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	access  *access.Policy
	repos   *gitrepo.Store
	api     *api.API
	handler http.Handler
	// mux holds top-level routes; the API's own mux serves /api/.
	mux *http.ServeMux
	// web serves the UI for every path no other handler claims.
	web       http.Handler
	engine    *pipeline.Engine
	secrets   *secrets.Box
	pushHooks []PushHook
	metrics   *metrics.Metrics
	// jobTokens authenticates CI job tokens for git (set by the runner API).
	jobTokens func(ctx context.Context, token string) (*store.User, int64, bool)
	closers   []func()
	// throttle limits password and token guessing over git Basic auth and
	// web sign-in (one shared home: per address, per account, PBKDF2 work).
	throttle *auth.Throttle
	// announcer carries replica-wide news over the runners' LISTEN/NOTIFY
	// connection on PostgreSQL (nil on SQLite: one process).
	announcer *queue.Postgres
	// loops is the one home of background loops: every area registers its
	// loops here while it is wired (never starts a goroutine of its own
	// that outlives a request); Serve starts them once the listener is
	// open, and shutdown stops them.
	loops *lifecycle.Manager
	// listenAddr is the listener's address once Serve runs (built-in
	// runners dial it).
	listenAddr net.Addr
	// bg tracks per-event follow-ups (push handling, bridges) that Close
	// waits for.
	bg sync.WaitGroup
	// onShutdown wakes long-polling requests so that shutdown is quick.
	onShutdown []func()
	// blobs keeps artifacts and finished job logs (Config.ObjectStore):
	// a blob.Dir at DataDir by default, or an S3 bucket.
	blobs blob.Store
}

// New opens storage and builds the handlers; it does not listen yet.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "kiln-data"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if cfg.ExternalURL == "" {
		cfg.ExternalURL = externalFromListen(cfg.Listen)
	}
	cfg.ExternalURL = strings.TrimRight(cfg.ExternalURL, "/")
	dsn := cfg.Database
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "kiln.db")
	}
	st, err := store.Open(ctx, dsn, log, store.Options{})
	if err != nil {
		return nil, err
	}
	if cfg.RepositoriesDir == "" {
		cfg.RepositoriesDir = filepath.Join(cfg.DataDir, "repositories")
	}
	repos, err := gitrepo.New(cfg.RepositoriesDir, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	blobs, err := OpenObjectStore(ctx, cfg, log)
	if err != nil {
		repos.Close()
		st.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, store: st, access: access.New(st), repos: repos, throttle: auth.NewThrottle(throttleConfig(st, log)), blobs: blobs}
	s.loops = lifecycle.New(log, st.WithClaim)
	s.closers = append(s.closers, func() { repos.Close() }, func() { st.Close() })
	if err := s.wirePipelines(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.api = api.New(api.Deps{Store: st, Repos: repos, Engine: s.engine, Secrets: s.secrets, Log: log, ExternalURL: cfg.ExternalURL, MaxBody: cfg.MaxBody})
	s.mux = http.NewServeMux()
	// Each area wires its routes and background work in its own file.
	for _, wire := range []func(context.Context) error{s.wireMetrics, s.wirePipelinesAPI, s.wireRunners, s.wireCleanup, s.wireTriggers, s.wireSchedules, s.wireWeb} {
		if err := wire(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.handler = s.instrument(s.routes())
	return s, nil
}

// throttleConfig shares the password throttle's counts through the
// database on PostgreSQL (every replica sees the same failures); SQLite
// is one process, whose memory will do.
func throttleConfig(st *store.Store, log *slog.Logger) auth.ThrottleConfig {
	if st.Dialect != store.Postgres {
		return auth.ThrottleConfig{}
	}
	return auth.ThrottleConfig{Shared: st, OnError: func(err error) {
		log.Warn("shared sign-in throttle unavailable; counting in this process", "err", err)
	}}
}

func externalFromListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Credentials are root's secrets as created on first start; a field is
// empty when it came from the environment (the operator knows it).
type Credentials struct {
	Username, Token, Password, URL string
	// DataDir and Database say where `kiln admin reset-root` finds them.
	DataDir, Database string
}

// bootstrap creates root on first start. It runs once the listener is bound,
// so that a start that cannot listen creates nothing and the next start
// still shows the credentials.
func (s *Server) bootstrap(ctx context.Context) (*Credentials, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, nil
	}
	token := s.cfg.InitialRootToken
	generatedToken := token == ""
	if generatedToken {
		token = auth.NewToken(auth.PATPrefix)
	}
	password := s.cfg.InitialRootPassword
	generatedPassword := password == ""
	if generatedPassword {
		password = auth.NewToken("")[:20]
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return nil, err
	}
	root := &store.User{Username: "root", Name: "Administrator", Email: "admin@example.com", IsAdmin: true, PasswordHash: hash}
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, root); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &store.Token{UserID: root.ID, Name: "initial root token", Scopes: []string{"api", "read_api", "read_repository", "write_repository"}}, auth.Hash(token))
	})
	if err != nil {
		return nil, fmt.Errorf("create root user: %w", err)
	}
	s.log.Info("created root administrator", "token_from_env", !generatedToken, "password_from_env", !generatedPassword)
	c := &Credentials{Username: "root", URL: s.cfg.ExternalURL, DataDir: s.cfg.DataDir, Database: s.cfg.Database}
	if generatedToken {
		c.Token = token
	}
	if generatedPassword {
		c.Password = password
	}
	return c, nil
}

// ResetCommand is the command that makes new root credentials for this
// server's database.
func (c Credentials) ResetCommand() string {
	if c.Database != "" {
		return "kiln admin reset-root --database '<the same --database URL>'"
	}
	return "kiln admin reset-root --data-dir " + c.DataDir
}

// PrintCredentials writes the first-start banner. These secrets exist in the
// clear only here; `kiln admin reset-root` makes new ones.
func PrintCredentials(w io.Writer, c Credentials) {
	if c.Token == "" && c.Password == "" {
		return
	}
	fmt.Fprintf(w, "\n  Kiln first start: sign in at %s as %s\n", c.URL, c.Username)
	if c.Token != "" {
		fmt.Fprintf(w, "\n  root's personal access token (API, git push):\n\n      %s\n", c.Token)
	}
	if c.Password != "" {
		fmt.Fprintf(w, "\n  root's web password (change it under Edit profile > Password):\n\n      %s\n", c.Password)
	}
	fmt.Fprintf(w, "\n  They are not shown again. Lost them? On this machine run\n\n      %s\n\n", c.ResetCommand())
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// Store exposes the store (for tests and subcommands).
func (s *Server) Store() *store.Store { return s.store }

func (s *Server) routes() http.Handler {
	mux := s.mux
	mux.HandleFunc("GET /-/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Kiln OK") })
	mux.HandleFunc("GET /-/liveness", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /-/readiness", s.readiness)
	mux.Handle("/api/", s.api)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := splitGitPath(r.URL.Path); ok {
			s.serveGit(w, r)
			return
		}
		if s.web != nil {
			s.web.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

// classify tells the HTTP guard how long a request may take: git and
// artifacts move large data; event streams wait for something to happen
// and count against the long-lived caps; runners' job requests too, but
// only against the total (only a valid runner token holds one open).
func (s *Server) classify(r *http.Request) httplimit.Class {
	p := r.URL.Path
	switch {
	case p == "/api/v4/jobs/request":
		return httplimit.Poll
	case strings.HasPrefix(p, "/api/") && strings.HasSuffix(p, "/events") && strings.Contains(p, "/pipelines/"):
		return httplimit.LongLived
	case strings.HasPrefix(p, "/api/") && strings.Contains(p, "/artifacts"):
		return httplimit.Transfer
	case strings.Contains(p, "/jobs/") && (strings.Contains(p, "/artifacts") || strings.HasSuffix(p, "/trace") || strings.HasSuffix(p, "/raw")):
		return httplimit.Transfer
	}
	if _, _, ok := splitGitPath(p); ok {
		return httplimit.Transfer
	}
	return httplimit.Normal
}

func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	dbStatus, blobStatus := "ok", "ok"
	if err := s.store.DB().PingContext(ctx); err != nil {
		dbStatus = "failed"
	}
	if err := s.blobs.Ping(ctx); err != nil {
		blobStatus = "failed"
		s.log.Warn("readiness: object store unreachable", "err", err)
	}
	status, code := "ok", http.StatusOK
	if dbStatus != "ok" || blobStatus != "ok" {
		status, code = "failed", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":%q,"master_check":[{"status":%q}],"db_check":[{"status":%q}],"object_store_check":[{"status":%q}]}`+"\n",
		status, status, dbStatus, blobStatus)
}

// Loops reports the background loops (for tests and diagnostics).
func (s *Server) Loops() []lifecycle.Status { return s.loops.Status() }

// Close stops the background loops and releases resources.
func (s *Server) Close() {
	s.loops.Stop()
	s.bg.Wait()
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// Run listens and serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hc := s.cfg.HTTP.WithDefaults(httplimit.RaiseFileLimit())
	guard := httplimit.NewGuard(hc, s.classify)
	lim := httplimit.NewListener(ln, hc.MaxConns)
	ln = lim
	// Read and write deadlines are set per request by the guard (streams
	// and transfers need longer ones than the rest), so the server-wide
	// ReadTimeout and WriteTimeout stay off.
	srv := &http.Server{
		Handler:           guard.Handler(s.handler),
		ReadHeaderTimeout: hc.ReadHeaderTimeout,
		IdleTimeout:       hc.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         lim.ConnState,
	}
	for _, fn := range s.onShutdown {
		srv.RegisterOnShutdown(fn)
	}
	// Root is created only now that the address is ours: a start that
	// cannot listen neither creates root nor shows its secrets.
	creds, err := s.bootstrap(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	s.log.Info("kiln server listening", "addr", ln.Addr().String(), "max_connections", hc.MaxConns, "external_url", s.cfg.ExternalURL, "data_dir", s.cfg.DataDir, "database", s.store.Dialect)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.listenAddr = ln.Addr()
	if creds != nil {
		if s.cfg.Credentials != nil {
			s.cfg.Credentials(*creds)
		} else {
			PrintCredentials(os.Stderr, *creds)
		}
	}
	s.loops.Start(ctx)
	select {
	case err := <-errc:
		s.loops.Stop()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	// Loops stop while requests are still served, so that built-in runners
	// can report the jobs they abort.
	s.loops.Stop()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
	return nil
}
