// Package runnerapi is the server side of the GitLab Runner protocol:
// runner registration and verification, the long-polled job request, job
// state updates, trace streaming and artifacts. Handlers are plain
// net/http handlers because the protocol parses its own bodies (raw trace
// bytes, streamed multipart archives).
package runnerapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/traces"
)

// Defaults for Config.
const (
	DefaultPollTimeout  = 50 * time.Second
	DefaultStaleTimeout = 5 * time.Minute
	// DefaultStatusInterval is how often Kiln asks runners that understand
	// client.StatusIntervalHeader to check a silent job's status.
	DefaultStatusInterval = time.Second
	// DefaultAckTimeout is how long a job handed to a runner may go without
	// the runner's first state update or trace before it is requeued.
	DefaultAckTimeout = time.Minute
	// OnlineWindow is how recently a runner must have been in contact to
	// count as online (GitLab: 2 hours).
	OnlineWindow = 2 * time.Hour
	// contactEvery bounds how often contacted_at is written per runner.
	contactEvery = time.Minute
	// reloadEvery is how long a cached runner row is trusted before it is
	// re-read (so that changes made on another replica take effect).
	reloadEvery = time.Minute
	// recheckEvery forces a database check now and then even without a
	// wake-up, as a safety net against a lost notification.
	recheckEvery = 10 * time.Minute
	// RegistrationTokenSetting holds the hash of the instance registration token.
	RegistrationTokenSetting = "runners_registration_token_hash"
	maxJSONBody              = 256 << 10
	maxTracePatch            = 4 << 20
)

// Config holds the service's dependencies.
type Config struct {
	Store     *store.Store
	Engine    *pipeline.Engine
	Repos     pipeline.Repos
	Notifier  queue.Notifier
	Traces    *traces.Store
	Artifacts *artifacts.Store
	// ExternalURL is where runners reach the server's git and API (no trailing slash).
	ExternalURL string
	Log         *slog.Logger
	// PollTimeout is how long a job request is held when there is no job.
	PollTimeout time.Duration
	// StaleTimeout fails running jobs whose runner has not reported for this long.
	StaleTimeout time.Duration
	// StatusInterval is sent to runners as client.StatusIntervalHeader:
	// how often a job with no new log asks whether it was canceled.
	StatusInterval time.Duration
	// AckTimeout requeues jobs whose runner has not acknowledged them
	// (first update or trace) for this long after they were handed out.
	AckTimeout time.Duration
	// UserByToken authenticates a personal access token (for artifact downloads by users).
	UserByToken func(ctx context.Context, token string) (*store.User, error)
	// Metrics, if set, counts polls and assignments.
	Metrics *Metrics
}

// Service implements the runner protocol.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	runners map[string]*cachedRunner // by token hash
	all     []*store.Runner          // every runner, for IsStuck
	allAt   time.Time
	touched map[int64]time.Time // job id → last liveness write
	bad412  map[int64]int       // job id → 412 answers given

	// checks counts database looks for jobs (tests assert idle polls make none).
	checks atomic.Int64
	// started is when this service began answering runners: a runner can
	// only be judged silent (stale, or not acknowledging) after it has had
	// the full timeout to reach this server.
	started time.Time

	done     chan struct{}
	doneOnce sync.Once
	bg       sync.WaitGroup
	waiting  sync.WaitGroup
}

// cachedRunner is a runner row plus the per-runner long-poll state.
type cachedRunner struct {
	mu        sync.Mutex
	hash      string
	r         *store.Runner
	loadedAt  time.Time
	stale     bool
	contacted time.Time
	// checked/emptyGen: the last database check found no job for this
	// runner at generation emptyGen, so until the generation moves there
	// is nothing new to look at.
	checked   bool
	emptyGen  uint64
	checkedAt time.Time
}

// New builds the service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	if cfg.StaleTimeout <= 0 {
		cfg.StaleTimeout = DefaultStaleTimeout
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.Notifier == nil {
		cfg.Notifier = queue.NewMemory()
	}
	cfg.ExternalURL = strings.TrimRight(cfg.ExternalURL, "/")
	return &Service{cfg: cfg, log: cfg.Log, runners: map[string]*cachedRunner{}, touched: map[int64]time.Time{}, bad412: map[int64]int{}, done: make(chan struct{}), started: time.Now()}
}

// Register adds the protocol's routes to mux.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v4/runners", s.register)
	mux.HandleFunc("POST /api/v4/runners/verify", s.verify)
	mux.HandleFunc("DELETE /api/v4/runners", s.unregister)
	mux.HandleFunc("DELETE /api/v4/runners/managers", s.unregisterManager)
	mux.HandleFunc("POST /api/v4/runners/reset_authentication_token", s.resetToken)
	mux.HandleFunc("POST /api/v4/jobs/request", s.requestJob)
	mux.HandleFunc("PUT /api/v4/jobs/{id}", s.updateJob)
	mux.HandleFunc("PATCH /api/v4/jobs/{id}/trace", s.patchTrace)
	mux.HandleFunc("POST /api/v4/jobs/{id}/artifacts", s.uploadArtifacts)
	mux.HandleFunc("GET /api/v4/jobs/{id}/artifacts", s.downloadArtifacts)
}

// Shutdown releases every waiting long-poll with 204 and refuses new waits.
func (s *Service) Shutdown() {
	s.doneOnce.Do(func() { close(s.done) })
}

// Wait waits for background work (pipeline processing after assignment).
func (s *Service) Wait() { s.bg.Wait() }

// RunnersChanged must be called after runners were created, changed or
// deleted: cached rows are re-read on next use and waiting runners are woken
// so that, for example, an unpaused runner picks up waiting jobs at once.
func (s *Service) RunnersChanged() {
	s.mu.Lock()
	for _, cr := range s.runners {
		cr.mu.Lock()
		cr.stale = true
		cr.checked = false
		cr.mu.Unlock()
	}
	s.allAt = time.Time{}
	s.mu.Unlock()
	s.cfg.Notifier.Notify()
}

// JobsPending is the engine hook: it wakes waiting runners.
func (s *Service) JobsPending() { s.cfg.Notifier.Notify() }

// --- responses -----------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg})
}

func forbidden(w http.ResponseWriter) { writeMessage(w, http.StatusForbidden, "403 Forbidden") }

func badRequest(w http.ResponseWriter, msg string) {
	writeMessage(w, http.StatusBadRequest, "400 Bad request - "+msg)
}

func internalError(w http.ResponseWriter) {
	writeMessage(w, http.StatusInternalServerError, "500 Internal Server Error")
}

// readJSON decodes a bounded JSON body; an empty body is an empty object.
// Form bodies (url-encoded or multipart, as in GitLab's curl examples) fill
// the same fields by their JSON names.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
		var err error
		if ct == "multipart/form-data" {
			err = r.ParseMultipartForm(maxJSONBody)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
			} else {
				badRequest(w, "malformed form body")
			}
			return false
		}
		vals := r.Form
		if r.MultipartForm != nil {
			vals = url.Values(r.MultipartForm.Value)
			for k, vs := range r.URL.Query() {
				vals[k] = append(vals[k], vs...)
			}
		}
		if err := formInto(v, vals); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return false
		}
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
		} else {
			badRequest(w, "could not read body")
		}
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		badRequest(w, "malformed JSON body")
		return false
	}
	return true
}

// --- runner authentication -------------------------------------------------

// runnerByToken resolves a runner token from memory; the database is read
// on a miss, after a change, and at most once a minute per runner.
func (s *Service) runnerByToken(ctx context.Context, token string) (*cachedRunner, error) {
	if token == "" || len(token) > 256 {
		return nil, nil
	}
	hash := auth.Hash(token)
	s.mu.Lock()
	cr := s.runners[hash]
	if cr == nil {
		cr = &cachedRunner{stale: true, hash: hash}
		// Bound the cache: unknown tokens must not grow it without limit.
		if len(s.runners) > 100000 {
			s.runners = map[string]*cachedRunner{}
		}
		s.runners[hash] = cr
	}
	s.mu.Unlock()
	if err := s.reload(ctx, cr, false); err != nil {
		return nil, err
	}
	if cr.runner() == nil {
		return nil, nil
	}
	return cr, nil
}

// reload re-reads a cached runner row when it is marked stale or old (or
// always with force); a deleted runner leaves cr.r nil.
func (s *Service) reload(ctx context.Context, cr *cachedRunner, force bool) error {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	now := time.Now()
	if !force && !cr.stale && now.Sub(cr.loadedAt) <= reloadEvery {
		return nil
	}
	r, err := s.cfg.Store.RunnerByTokenHash(ctx, cr.hash)
	if errors.Is(err, store.ErrNotFound) {
		r = nil
	} else if err != nil {
		return err
	}
	cr.r, cr.loadedAt, cr.stale = r, now, false
	return nil
}

func (cr *cachedRunner) runner() *store.Runner {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.r
}

// touchRunner records contact at most once a minute, off the request path.
func (s *Service) touchRunner(cr *cachedRunner, info versionInfo, r *http.Request) {
	now := time.Now()
	cr.mu.Lock()
	if cr.r == nil {
		// Deleted while this request was in flight.
		cr.mu.Unlock()
		return
	}
	due := now.Sub(cr.contacted) >= contactEvery
	if due {
		cr.contacted = now
		c := now
		// Copy on write: readers hold the old pointer without the lock.
		cp := *cr.r
		cp.ContactedAt = &c
		cr.r = &cp
	}
	id := cr.r.ID
	cr.mu.Unlock()
	if !due {
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error {
			return tx.TouchRunner(ctx, id, now, trunc(info.Version, 100), trunc(info.Platform, 50), trunc(info.Architecture, 50), trunc(ip, 64))
		})
		if err != nil {
			s.log.Warn("recording runner contact failed", "runner", id, "err", err)
		}
	}()
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// versionInfo is the part of a runner's "info" the server records.
type versionInfo struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Platform     string `json:"platform"`
	Architecture string `json:"architecture"`
}

// runnerToken finds a runner token in the body or the RUNNER-TOKEN header (≥ 17.11).
func runnerToken(r *http.Request, body string) string {
	if body != "" {
		return body
	}
	return r.Header.Get("RUNNER-TOKEN")
}

// allRunners returns every runner, re-read at most every 30 s.
func (s *Service) allRunners(ctx context.Context) []*store.Runner {
	s.mu.Lock()
	if time.Since(s.allAt) < 30*time.Second {
		all := s.all
		s.mu.Unlock()
		return all
	}
	s.mu.Unlock()
	all, err := s.cfg.Store.AllRunners(ctx)
	if err != nil {
		s.log.Warn("loading runners failed", "err", err)
		return nil
	}
	s.mu.Lock()
	s.all, s.allAt = all, time.Now()
	s.mu.Unlock()
	return all
}

// IsStuck reports whether a pending job has no online, unpaused runner able
// to take it (GitLab's "stuck" flag in job JSON).
func (s *Service) IsStuck(ctx context.Context, j *store.Job) bool {
	if j == nil || j.Status != "pending" || j.Kind == "bridge" {
		return false
	}
	m := newMatcher(s.cfg.Store)
	now := time.Now()
	for _, r := range s.allRunners(ctx) {
		if r.ContactedAt == nil || now.Sub(*r.ContactedAt) > OnlineWindow {
			continue
		}
		if m.matches(ctx, r, j) {
			return false
		}
	}
	return true
}

// JobToken authenticates a CI job token: the job must be running (tokens
// are revoked when a job finishes). It returns the job and the user the
// job runs as (nil if the pipeline has no user).
func (s *Service) JobToken(ctx context.Context, token string) (*store.Job, *store.User, bool) {
	j := s.jobByToken(ctx, token)
	if j == nil {
		return nil, nil, false
	}
	var u *store.User
	if j.UserID != 0 {
		if uu, err := s.cfg.Store.UserByID(ctx, j.UserID); err == nil && uu.State == "active" {
			u = uu
		}
	}
	return j, u, true
}

func (s *Service) jobByToken(ctx context.Context, token string) *store.Job {
	if token == "" || len(token) > 256 {
		return nil
	}
	j, err := s.cfg.Store.JobByTokenHash(ctx, auth.Hash(token))
	if err != nil {
		return nil
	}
	if j.Status != "running" && j.Status != "canceling" {
		return nil
	}
	return j
}
