// Package runner is Kiln's job agent: it pulls jobs from a server speaking
// the GitLab Runner protocol (Kiln itself or GitLab) and runs them with a
// shell executor (bash), directly or in a bubblewrap sandbox (see
// Executor), streaming the log back and uploading artifacts.
package runner

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/stall"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultPollTimeout        = 90 * time.Second
	DefaultCheckInterval      = time.Second
	DefaultTraceInterval      = time.Second
	DefaultTraceLimit         = 4 << 20
	DefaultKeepAliveInterval  = 30 * time.Second
	DefaultKillGrace          = time.Second
	DefaultAfterScriptTimeout = 5 * time.Minute
	DefaultAbortReportTimeout = 30 * time.Second
	DefaultJobTimeout         = 2 * time.Hour
	// DefaultArtifactStallTimeout is Config.ArtifactStallTimeout's default.
	DefaultArtifactStallTimeout = stall.DefaultTimeout

	backoffMin = 100 * time.Millisecond
	backoffMax = 30 * time.Second
)

// Config configures a Runner.
type Config struct {
	// URL is the server's base URL (e.g. http://kiln:8080/).
	URL string
	// Token is the runner authentication token.
	Token string
	// Name is shown in job logs; defaults to the host name.
	Name string
	// SystemID identifies this agent to the server; random if empty.
	SystemID string
	// Concurrent is the number of jobs run at once (workers); default 1.
	Concurrent int
	// BuildsDir holds one checkout per worker and project; default "builds".
	BuildsDir string
	// CacheDir holds job caches by project and key; default "cache".
	// With Cache set it only holds archives on their way to and from it.
	CacheDir string
	// Cache, when set, keeps job caches in a shared store (an S3 bucket)
	// under "cache/<project path>/<key>/cache.zip" instead of CacheDir, so
	// that runners on different machines share them.
	Cache blob.Store
	// CacheTimeout bounds one cache download or upload to Cache
	// (default 10 minutes); a failure is a warning in the job log.
	CacheTimeout time.Duration
	// Shell is the bash-compatible shell scripts run in; default "bash".
	Shell string
	// Executor runs the job's processes; default ShellExecutor (on the
	// host, as the agent's user). See SandboxExecutor.
	Executor Executor

	// PollTimeout bounds one job request; the server may hold it ~50 s.
	PollTimeout time.Duration
	// CheckInterval is the minimum time between two job requests, so a
	// server answering 204 at once is not hammered. Negative means no wait,
	// for in-process runners that rely on long-polling.
	CheckInterval time.Duration
	// TraceInterval is how often new log output is sent; default 1 s.
	TraceInterval time.Duration
	// TraceLimit cuts the log after this many bytes; default 4 MiB.
	TraceLimit int64
	// KeepAliveInterval: a job that printed nothing for this long sends a
	// state=running update, which is how it learns it was canceled; default
	// 30 s, as GitLab Runner. A server sending client.StatusIntervalHeader
	// (Kiln does, every second) shortens it for its jobs.
	KeepAliveInterval time.Duration
	// KillGrace is the delay between SIGTERM and SIGKILL; default 1 s.
	KillGrace time.Duration
	// AfterScriptTimeout bounds after_script; default 5 min.
	AfterScriptTimeout time.Duration
	// AbortReportTimeout bounds how long the final job update is retried
	// after Abort; before Abort it is retried until the server takes it.
	AbortReportTimeout time.Duration

	// HTTPClient is used for the protocol; it must not have a short timeout.
	HTTPClient *http.Client
	// ArtifactStallTimeout bounds an artifacts download the server
	// redirected to the object store (a presigned URL, direct_download):
	// no connection, no response headers or no body bytes for this long
	// fails the attempt with an error naming the object store's host, and
	// the download is retried as other failed downloads are. Default
	// DefaultArtifactStallTimeout; negative: no bound.
	ArtifactStallTimeout time.Duration

	// Environ is the environment jobs start from, before their CI
	// variables; nil means this process's own (GitLab Runner's shell
	// executor does the same). KILN_* is dropped either way. Runners that
	// live in the server pass MinimalEnviron, so that the operator's
	// credentials (PGPASSWORD, cloud keys, ...) never reach a job.
	Environ []string
}

// MinimalEnviron keeps the entries of env a job needs to find programs and
// read text (PATH, HOME, user name, shell, locale, time zone, proxies) and
// drops everything else.
func MinimalEnviron(env []string) []string {
	keep := map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
		"LANG": true, "LANGUAGE": true, "TZ": true,
		"http_proxy": true, "https_proxy": true, "no_proxy": true, "HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true}
	out := []string{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if keep[k] || strings.HasPrefix(k, "LC_") {
			out = append(out, kv)
		}
	}
	return out
}

// Runner pulls and executes jobs. Create it with New and start it with Run.
type Runner struct {
	cfg       Config
	log       *slog.Logger
	abortCtx  context.Context
	abortFunc context.CancelFunc
	tokenHash string
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.SystemID == "" {
		c.SystemID = NewSystemID()
	}
	if c.Concurrent <= 0 {
		c.Concurrent = 1
	}
	if c.BuildsDir == "" {
		c.BuildsDir = "builds"
	}
	if c.CacheDir == "" {
		c.CacheDir = "cache"
	}
	if abs, err := filepath.Abs(c.BuildsDir); err == nil {
		c.BuildsDir = abs
	}
	if abs, err := filepath.Abs(c.CacheDir); err == nil {
		c.CacheDir = abs
	}
	if c.Shell == "" {
		c.Shell = "bash"
	}
	if c.Executor == nil {
		c.Executor = ShellExecutor{}
	}
	if c.PollTimeout <= 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.TraceInterval <= 0 {
		c.TraceInterval = DefaultTraceInterval
	}
	if c.TraceLimit <= 0 {
		c.TraceLimit = DefaultTraceLimit
	}
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if c.KillGrace <= 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.AfterScriptTimeout <= 0 {
		c.AfterScriptTimeout = DefaultAfterScriptTimeout
	}
	if c.AbortReportTimeout <= 0 {
		c.AbortReportTimeout = DefaultAbortReportTimeout
	}
	if c.ArtifactStallTimeout == 0 {
		c.ArtifactStallTimeout = DefaultArtifactStallTimeout
	}
	return c
}

// NewSystemID returns a random system id in GitLab's "s_" + 12 hex format.
func NewSystemID() string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return "s_" + hex.EncodeToString(b[:])
}

// New returns a runner; zero Config fields get the documented defaults.
func New(cfg Config, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	sum := sha256.Sum256([]byte(cfg.Token))
	return &Runner{
		cfg:       cfg,
		log:       log,
		abortCtx:  ctx,
		abortFunc: cancel,
		// Hashed, unlike gitlab-runner's token prefix, so build paths do
		// not reveal any part of the token.
		tokenHash: hex.EncodeToString(sum[:4]),
	}
}

// Abort kills running jobs (SIGTERM, then SIGKILL) and reports them failed.
// Use it after Run's context was cancelled, for a forced shutdown.
func (r *Runner) Abort() { r.abortFunc() }

// Run polls for jobs with Config.Concurrent workers until ctx is cancelled,
// then stops polling and returns once the running jobs are finished (or,
// after Abort, killed and reported).
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.Token == "" {
		return errors.New("runner: no token configured")
	}
	hc := r.cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 10 * time.Minute
		tr.MaxIdleConnsPerHost = 2*r.cfg.Concurrent + 4
		hc = &http.Client{Transport: tr}
	}
	c, err := client.New(client.Options{URL: r.cfg.URL, Token: r.cfg.Token, SystemID: r.cfg.SystemID, HTTPClient: hc, Info: executorInfo(r.cfg.Executor),
		StallTimeout: r.cfg.ArtifactStallTimeout})
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	for _, d := range []string{r.cfg.BuildsDir, r.cfg.CacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
	}
	r.log.Info("runner started", "url", c.URL(), "name", r.cfg.Name, "concurrent", r.cfg.Concurrent, "system_id", r.cfg.SystemID)
	var wg sync.WaitGroup
	for slot := range r.cfg.Concurrent {
		wg.Go(func() { r.worker(ctx, c, slot) })
	}
	wg.Wait()
	r.log.Info("runner stopped")
	return nil
}

// backoff yields exponentially growing delays with full jitter, so many
// runners reconnecting to a restarted server do not arrive in lockstep.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Runner) worker(ctx context.Context, c *client.Client, slot int) {
	log := r.log.With("worker", slot)
	bo := backoff{min: backoffMin, max: backoffMax}
	for ctx.Err() == nil {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, r.cfg.PollTimeout)
		job, err := c.RequestJob(pctx)
		timedOut := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case ctx.Err() != nil:
			if job != nil {
				// Already handed to us; running it beats leaving it stuck.
				r.runJob(c, slot, job, log)
			}
			return
		case err != nil && timedOut:
			continue
		case err != nil:
			d := bo.next()
			if client.IsStatus(err, http.StatusForbidden) {
				log.Error("job request forbidden: check the runner token", "err", err)
			} else {
				log.Warn("job request failed", "err", err, "retry_in", d)
			}
			sleepCtx(ctx, d)
			continue
		}
		bo.reset()
		if job == nil {
			if r.cfg.CheckInterval > 0 {
				sleepCtx(ctx, r.cfg.CheckInterval-time.Since(start))
			}
			continue
		}
		r.runJob(c, slot, job, log)
	}
}
