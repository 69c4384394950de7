package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

// Deps are what the API needs; the server passes them in.
type Deps struct {
	Store       *store.Store
	Repos       Repos
	Engine      *pipeline.Engine
	Secrets     *secrets.Box
	Log         *slog.Logger
	ExternalURL string // without trailing slash
	// MaxBody bounds request bodies of ordinary endpoints.
	MaxBody int64
	// SessionUser resolves a browser session cookie to a user (nil: none).
	SessionUser func(r *http.Request) *store.User
	// Schedules wakes the scheduler and runs schedules on demand; the
	// schedule wiring fills it in (see schedules.go).
	Schedules ScheduleHooks
	// Webhooks is set by RegisterWebhookTriggers (the UI uses it).
	Webhooks *WebhookService
	// Runners gives access to runner-side state (job tokens, stuck jobs,
	// traces, artifacts); the runner wiring fills it in (see runners.go).
	Runners RunnerHooks
	// FilesDeleted removes the files that a committed deletion queued
	// (store.FileDeletion): the server's sweeper fills it in; nil in tests
	// that do not wire it, where the queue simply waits.
	FilesDeleted func(ctx context.Context)
}

// filesDeleted runs the sweeper after a deletion committed. It is not
// bound to the request: a client that hangs up does not stop the removal,
// and what fails is retried by the sweeper's loop.
func (a *API) filesDeleted(ctx context.Context) {
	if a.FilesDeleted != nil {
		a.FilesDeleted(context.WithoutCancel(ctx))
	}
}

// API is the REST handler set.
type API struct {
	Deps
	mux *http.ServeMux
	// touched remembers when a token's last_used_at was written, so that a
	// busy client does not cost one write per request.
	touchMu sync.Mutex
	touched map[int64]time.Time
}

// New builds the API and registers its routes.
func New(d Deps) *API {
	if d.MaxBody == 0 {
		d.MaxBody = 1 << 20
	}
	a := &API{Deps: d, mux: http.NewServeMux(), touched: map[int64]time.Time{}}
	a.routes()
	return a
}

// ServeHTTP serves /api/... requests.
// Every API answer carries X-Content-Type-Options: nosniff, as GitLab's
// do, so that a browser never renders JSON (or a raw file) as HTML.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(w, r)
}

// Mux exposes the mux so that other adapters (runners, triggers) can add routes.
func (a *API) Mux() *http.ServeMux { return a.mux }

func (a *API) routes() {
	a.handle("GET /api/v4/version", a.version)
	a.handle("GET /api/v4/user", a.currentUser)
	a.handle("GET /api/v4/users", a.listUsers)
	a.handle("POST /api/v4/users", a.createUser)
	a.handle("GET /api/v4/users/{id}", a.getUser)
	a.handle("PUT /api/v4/users/{id}", a.updateUser)
	a.handle("POST /api/v4/users/{id}/personal_access_tokens", a.createUserToken)
	a.handle("GET /api/v4/personal_access_tokens", a.listTokens)
	a.handle("GET /api/v4/personal_access_tokens/self", a.selfToken)
	a.handle("GET /api/v4/personal_access_tokens/{id}", a.getToken)
	a.handle("DELETE /api/v4/personal_access_tokens/self", a.revokeSelfToken)
	a.handle("DELETE /api/v4/personal_access_tokens/{id}", a.revokeToken)

	a.handle("GET /api/v4/groups", a.listGroups)
	a.handle("POST /api/v4/groups", a.createGroup)
	a.handle("GET /api/v4/groups/{id}", a.getGroup)
	a.handle("GET /api/v4/groups/{id}/members", a.listGroupMembers)
	a.handle("POST /api/v4/groups/{id}/members", a.addGroupMember)
	a.handle("PUT /api/v4/groups/{id}/members/{user_id}", a.addGroupMember)
	a.handle("DELETE /api/v4/groups/{id}/members/{user_id}", a.removeGroupMember)

	a.handle("GET /api/v4/projects", a.listProjects)
	a.handle("POST /api/v4/projects", a.createProject)
	a.handle("GET /api/v4/projects/{id}", a.getProject)
	a.handle("PUT /api/v4/projects/{id}", a.updateProject)
	a.handle("DELETE /api/v4/projects/{id}", a.deleteProject)
	a.handle("GET /api/v4/projects/{id}/members", a.listProjectMembers)
	a.handle("GET /api/v4/projects/{id}/members/all", a.listProjectMembers)
	a.handle("POST /api/v4/projects/{id}/members", a.addProjectMember)
	a.handle("PUT /api/v4/projects/{id}/members/{user_id}", a.addProjectMember)
	a.handle("DELETE /api/v4/projects/{id}/members/{user_id}", a.removeProjectMember)

	a.handle("GET /api/v4/projects/{id}/repository/branches", a.listBranches)
	a.handle("GET /api/v4/projects/{id}/repository/branches/{branch}", a.getBranch)
	a.handle("GET /api/v4/projects/{id}/repository/tags", a.listTags)
	a.handle("GET /api/v4/projects/{id}/repository/files/{path}", a.getFile)
	a.handle("GET /api/v4/projects/{id}/repository/files/{path}/raw", a.getRawFile)
	a.handle("GET /api/v4/projects/{id}/repository/commits/{sha}", a.getCommit)

	// Each resource file registers its own routes.
	a.pipelineRoutes()
	a.jobRoutes()
	a.variableRoutes()
	a.lintRoutes()
	a.triggerRoutes()
	a.scheduleRoutes()
	a.runnerRoutes()

	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, errMessage(http.StatusNotFound, "404 Not Found"))
	})
}

// handlerFunc is an endpoint: it returns an *apiError (or any error, which
// becomes a 500) instead of writing errors itself.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *reqCtx) error

// reqCtx is the per-request state endpoints share.
type reqCtx struct {
	ctx    context.Context
	user   *store.User  // nil when anonymous
	token  *store.Token // the personal access token used, if any
	params *Params
}

// Handle registers an endpoint under a ServeMux pattern, with authentication,
// scope checks and parameter parsing done once for all endpoints.
func (a *API) Handle(pattern string, fn handlerFunc) { a.handle(pattern, fn) }

func (a *API) handle(pattern string, fn handlerFunc) {
	method, _, _ := strings.Cut(pattern, " ")
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &reqCtx{ctx: r.Context()}
		err := a.authenticate(r, c, method)
		// Presenters that link to other projects check what the caller
		// may see (see render.project).
		c.ctx = context.WithValue(c.ctx, viewerKey{}, c.user)
		if err == nil {
			c.params, err = readParams(r, a.MaxBody)
		}
		if err == nil {
			err = fn(w, r, c)
		}
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				a.Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeErr(w, err)
		}
	})
}

// tokenFromRequest finds a personal access token where GitLab accepts one.
func tokenFromRequest(r *http.Request) string {
	if t := r.Header.Get("PRIVATE-TOKEN"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("private_token")
}

func (a *API) authenticate(r *http.Request, c *reqCtx, method string) error {
	secret := tokenFromRequest(r)
	if secret == "" {
		if a.SessionUser != nil {
			c.user = a.SessionUser(r)
		}
		return nil
	}
	u, k, err := a.userByToken(r.Context(), secret)
	if err != nil {
		return err
	}
	readOnly := method == http.MethodGet || method == http.MethodHead
	if !k.HasScope("api") && !(readOnly && k.HasScope("read_api")) {
		return &apiError{Status: http.StatusForbidden, Body: map[string]any{
			"error":             "insufficient_scope",
			"error_description": "The request requires higher privileges than provided by the access token.",
			"scope":             "api read_api",
		}}
	}
	c.user, c.token = u, k
	return nil
}

// userByToken resolves a personal access token; any failure is a 401, so
// that unknown, revoked and expired tokens are indistinguishable.
func (a *API) userByToken(ctx context.Context, secret string) (*store.User, *store.Token, error) {
	if len(secret) > 256 {
		return nil, nil, errUnauthorized
	}
	k, err := a.Store.TokenByHash(ctx, auth.Hash(secret))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, errUnauthorized
		}
		return nil, nil, err
	}
	if !k.Active(time.Now()) {
		return nil, nil, errUnauthorized
	}
	u, err := a.Store.UserByID(ctx, k.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.State != "active" {
		return nil, nil, errUnauthorized
	}
	a.touchToken(ctx, k.ID)
	return u, k, nil
}

func (a *API) touchToken(ctx context.Context, id int64) {
	a.touchMu.Lock()
	last := a.touched[id]
	now := time.Now()
	due := now.Sub(last) > time.Minute
	if due {
		a.touched[id] = now
	}
	a.touchMu.Unlock()
	if due {
		go a.Store.Write(context.WithoutCancel(ctx), func(tx *store.Tx) error { return tx.TouchToken(context.Background(), id) })
	}
}

// CheckToken authenticates a personal access token for other adapters (git
// over HTTP): it returns the user and token or an error.
func (a *API) CheckToken(ctx context.Context, secret string) (*store.User, *store.Token, error) {
	return a.userByToken(ctx, secret)
}

func (c *reqCtx) requireUser() error {
	if c.user == nil {
		return errUnauthorized
	}
	return nil
}

func (c *reqCtx) requireAdmin() error {
	if c.user == nil {
		return errUnauthorized
	}
	if !c.user.IsAdmin {
		return errForbidden
	}
	return nil
}

func (a *API) version(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": "17.0.0-kiln", "revision": "kiln"})
	return nil
}

type viewerKey struct{}

// viewerOf is the user a response is rendered for (nil: anonymous).
func viewerOf(ctx context.Context) *store.User {
	u, _ := ctx.Value(viewerKey{}).(*store.User)
	return u
}
