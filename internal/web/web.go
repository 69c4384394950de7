// Package web serves Kiln's browser UI: server-rendered HTML from embedded
// html/template files, a small stylesheet and a little vanilla JavaScript
// that only enhances pages (live logs, live pipeline graphs, reveal and copy
// buttons); every form works without it.
//
// URLs follow GitLab's layout (/users/sign_in, /<namespace>/<project>,
// /<namespace>/<project>/-/pipelines, ...). Like the REST API, the UI is an
// adapter over the store and the pipeline engine, with the same
// authorization rules: projects a viewer may not see answer 404.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Repos is what the UI needs from the repository store.
type Repos interface {
	Create(ctx context.Context, repo string) error
	Delete(ctx context.Context, repo string) error
	SetDefaultBranch(ctx context.Context, repo, branch string) error
	Branches(ctx context.Context, repo string) ([]gitrepo.Ref, error)
}

// TraceReader returns up to max bytes of a job's log starting at offset,
// and the log's total size so far.
type TraceReader func(ctx context.Context, jobID, offset int64, max int) ([]byte, int64, error)

// Deps are the UI's collaborators; the server passes them in.
type Deps struct {
	Store       *store.Store
	Repos       Repos
	Engine      *pipeline.Engine
	Secrets     *secrets.Box
	Log         *slog.Logger
	ExternalURL string // without trailing slash
	// ReadTrace reads job logs (nil: logs show as empty).
	ReadTrace TraceReader
	// OpenTrace streams a whole job log (the raw view; nil: ReadTrace in
	// pieces).
	OpenTrace func(ctx context.Context, jobID int64) (io.ReadCloser, int64, error)
	// PlaySchedule runs a pipeline schedule now (nil hides "Play");
	// ScheduleChanged wakes the scheduler after a schedule was saved.
	PlaySchedule    func(ctx context.Context, sc *store.Schedule, u *store.User) (*store.Pipeline, error)
	ScheduleChanged func()
	// Health reports instance health lines for /admin.
	Health func(ctx context.Context) []HealthItem
	// SessionTTL is how long a sign-in lasts (default 7 days).
	SessionTTL time.Duration
	// Throttle limits password guessing; the server shares one with git
	// Basic auth (nil: the UI makes its own).
	Throttle *auth.Throttle
	// Webhooks saves and tests webhook triggers with the API's rules (nil
	// hides the page).
	Webhooks *api.WebhookService
}

// HealthItem is one line of the admin health table.
type HealthItem struct {
	Name   string
	OK     bool
	Detail string
}

// Web is the UI handler.
type Web struct {
	Deps
	pages  map[string]*template.Template
	static http.Handler
	secure bool
	// dummyHash makes a sign-in for an unknown user cost as much as one for
	// a known user, so that timing does not reveal which usernames exist.
	dummyHash string
}

// New parses the embedded templates and returns the UI handler.
func New(d Deps) (*Web, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.SessionTTL == 0 {
		d.SessionTTL = 7 * 24 * time.Hour
	}
	if d.Throttle == nil {
		d.Throttle = auth.NewThrottle(auth.ThrottleConfig{})
	}
	w := &Web{Deps: d, secure: strings.HasPrefix(d.ExternalURL, "https://")}
	var err error
	if w.dummyHash, err = auth.HashPassword("kiln-timing-equaliser"); err != nil {
		return nil, err
	}
	if err := w.parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	w.static = http.StripPrefix("/-/static/", http.FileServerFS(sub))
	return w, nil
}

// parseTemplates builds one template set per page: the shared layout and
// partials plus that page's file, so that every page can define its own
// "content" block.
func (w *Web) parseTemplates() error {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return err
	}
	base := template.New("").Funcs(funcs())
	for _, n := range names {
		if strings.HasPrefix(n, "templates/_") {
			if base, err = base.ParseFS(templateFiles, n); err != nil {
				return err
			}
		}
	}
	w.pages = map[string]*template.Template{}
	for _, n := range names {
		if strings.HasPrefix(n, "templates/_") {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return err
		}
		if t, err = t.ParseFS(templateFiles, n); err != nil {
			return err
		}
		w.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	return nil
}

// req is one request's state.
type req struct {
	w    http.ResponseWriter
	r    *http.Request
	ctx  context.Context
	user *store.User
	sess *session
	// project and level are set on project routes; level is the effective
	// access level (Reporter for outsiders of public/internal projects).
	project *store.Project
	level   int
	// member is the viewer's real membership level (0 for outsiders).
	member int
}

// ServeHTTP routes every UI path.
func (w *Web) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	h := rw.Header()
	// Defence in depth behind escaping: no inline script can run, and the
	// UI cannot be framed (clickjacking on the revoke buttons).
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	p := r.URL.Path
	if strings.HasPrefix(p, "/-/static/") {
		h.Set("Cache-Control", "public, max-age=3600")
		w.static.ServeHTTP(rw, r)
		return
	}
	q := &req{w: rw, r: r, ctx: r.Context()}
	w.loadSession(q)
	if r.Method == http.MethodPost && !w.checkCSRF(q) {
		w.fail(q, http.StatusForbidden, "Your session's security token did not match. Reload the page and try again.")
		return
	}
	switch {
	case p == "/users/sign_in":
		w.signIn(q)
	case p == "/users/sign_out":
		w.signOut(q)
	case p == "/":
		w.dashboard(q)
	case p == "/projects/new" || p == "/projects":
		w.newProject(q)
	case p == "/admin" || strings.HasPrefix(p, "/admin/"):
		w.admin(q, strings.Trim(strings.TrimPrefix(p, "/admin"), "/"))
	case p == "/-/user_settings/password/edit" && r.Method != http.MethodPost, p == "/-/user_settings/password" && r.Method == http.MethodPost:
		w.passwordEdit(q)
	case p == "/dashboard/groups":
		w.groupsList(q)
	case p == "/groups/new" || (p == "/groups" && r.Method == http.MethodPost):
		w.newGroup(q)
	case strings.HasPrefix(p, "/groups/"):
		w.groupRoute(q, strings.TrimPrefix(p, "/groups/"))
	case p == tokensPath || strings.HasPrefix(p, tokensPath+"/"):
		w.tokensRoute(q, strings.TrimPrefix(p, tokensPath))
	case p == "/favicon.ico":
		http.NotFound(rw, r)
	default:
		w.projectRoute(q)
	}
}

// projectRoute serves /<namespace>/<project>[/-/<rest>].
func (w *Web) projectRoute(q *req) {
	path, rest, _ := strings.Cut(strings.Trim(q.r.URL.Path, "/"), "/-/")
	if !strings.Contains(path, "/") {
		w.notFound(q)
		return
	}
	if !w.loadProject(q, path) {
		return
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	get := q.r.Method == http.MethodGet || q.r.Method == http.MethodHead
	post := q.r.Method == http.MethodPost
	id := int64(0)
	if len(seg) > 1 {
		id, _ = strconv.ParseInt(seg[1], 10, 64)
	}
	switch {
	case rest == "" && get:
		w.projectHome(q)
	case seg[0] == "pipelines" && len(seg) == 1 && get:
		w.pipelineList(q)
	case seg[0] == "pipelines" && len(seg) == 1 && post:
		w.runPipeline(q)
	case seg[0] == "pipelines" && len(seg) == 2 && seg[1] == "new" && get:
		w.newPipeline(q)
	case seg[0] == "pipelines" && len(seg) == 2 && id > 0 && get:
		w.pipelineShow(q, id)
	case seg[0] == "pipelines" && len(seg) == 3 && id > 0 && post:
		w.pipelineAction(q, id, seg[2])
	case seg[0] == "jobs" && len(seg) == 1 && get:
		w.jobList(q)
	case seg[0] == "jobs" && len(seg) == 2 && id > 0 && get:
		w.jobShow(q, id)
	case seg[0] == "jobs" && len(seg) == 3 && id > 0 && seg[2] == "trace.json" && get:
		w.jobTrace(q, id)
	case seg[0] == "jobs" && len(seg) == 3 && id > 0 && seg[2] == "raw" && get:
		w.jobRaw(q, id)
	case seg[0] == "jobs" && len(seg) == 3 && id > 0 && post:
		w.jobAction(q, id, seg[2])
	case rest == "settings/ci_cd" && get:
		w.settingsCICD(q, nil)
	case seg[0] == "settings" && len(seg) == 5 && seg[1] == "ci_cd" && seg[2] == "triggers" && seg[4] == "edit" && get:
		w.editTrigger(q, seg[3])
	case seg[0] == "settings" && len(seg) >= 3 && seg[1] == "ci_cd" && post:
		w.settingsAction(q, seg[2:])
	case seg[0] == "settings" && len(seg) >= 2 && seg[1] == "webhooks":
		w.webhooksRoute(q, seg[2:])
	case seg[0] == "pipeline_schedules":
		w.schedulesRoute(q, seg[1:])
	default:
		w.notFound(q)
	}
}

// loadProject resolves a project path and the viewer's access, answering
// 404 (never 403) for projects the viewer may not see, as the API does.
func (w *Web) loadProject(q *req, path string) bool {
	p, err := w.Store.ProjectByPath(q.ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		w.notFound(q)
		return false
	} else if err != nil {
		w.internal(q, err)
		return false
	}
	level, err := access.New(w.Store).Level(q.ctx, p, q.user)
	if err != nil {
		w.internal(q, err)
		return false
	}
	q.member = level
	if access.Hidden(p, q.user, level) {
		w.notFound(q)
		return false
	}
	// Outsiders and guest members alike read a visible project's code and
	// pipelines.
	level = access.Effective(p, q.user, level)
	q.project, q.level = p, level
	return true
}

// page is what every template gets.
type page struct {
	Title   string
	User    *store.User
	CSRF    string
	Project *store.Project
	Level   int
	Nav     string
	Flash   string
	Error   string
	BaseURL string
	Data    any
}

func (w *Web) newPage(q *req, title, nav string, data any) *page {
	pg := &page{Title: title, User: q.user, Project: q.project, Level: q.level, Nav: nav, Data: data, BaseURL: w.ExternalURL}
	if q.sess != nil {
		pg.CSRF = q.sess.csrf
	}
	pg.Flash = w.takeFlash(q)
	return pg
}

// render executes a page template; the output is buffered so that a
// template error becomes a clean 500 rather than half a page.
func (w *Web) render(q *req, status int, name string, pg *page) {
	t := w.pages[name]
	if t == nil {
		w.internal(q, errors.New("no template "+name))
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", pg); err != nil {
		w.Log.Error("render failed", "template", name, "err", err)
		http.Error(q.w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.Header().Set("Cache-Control", "no-store")
	q.w.WriteHeader(status)
	if q.r.Method != http.MethodHead {
		q.w.Write([]byte(b.String()))
	}
}

// renderPartial executes one named template of a page (live fragments).
func (w *Web) renderPartial(q *req, name, tmpl string, data any) {
	var b strings.Builder
	if err := w.pages[name].ExecuteTemplate(&b, tmpl, data); err != nil {
		w.internal(q, err)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.Header().Set("Cache-Control", "no-store")
	q.w.Write([]byte(b.String()))
}

func (w *Web) fail(q *req, status int, msg string) {
	pg := w.newPage(q, http.StatusText(status), "", map[string]any{"Status": status, "Message": msg})
	w.render(q, status, "error", pg)
}

// notFound sends anonymous visitors to sign in first (then back here), as
// GitLab does: a project that exists and one that does not get the same
// answer, so nothing is revealed, and a link from the API or `kiln trigger`
// works once signed in. Signed-in users get the 404.
func (w *Web) notFound(q *req) {
	if q.user == nil && (q.r.Method == http.MethodGet || q.r.Method == http.MethodHead) {
		w.requireUser(q)
		return
	}
	w.fail(q, http.StatusNotFound, "The page could not be found or you don't have permission to view it.")
}

func (w *Web) internal(q *req, err error) {
	w.Log.Error("web request failed", "method", q.r.Method, "path", q.r.URL.Path, "err", err)
	w.fail(q, http.StatusInternalServerError, "Something went wrong on our end.")
}

// redirect answers a POST with 303 See Other (post/redirect/get) and an
// optional flash message shown on the next page.
func (w *Web) redirect(q *req, to, flash string) {
	if flash != "" {
		w.setFlash(q, flash)
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
}

// requireUser sends anonymous visitors to the sign-in page.
func (w *Web) requireUser(q *req) bool {
	if q.user != nil {
		return true
	}
	http.Redirect(q.w, q.r, "/users/sign_in?redirect_to="+urlQueryEscape(q.r.URL.RequestURI()), http.StatusFound)
	return false
}

// requireLevel checks the effective project level; too low is 404 for
// pages a role cannot see at all (settings), matching GitLab.
func (w *Web) requireLevel(q *req, min int) bool {
	if q.level >= min {
		return true
	}
	if q.user == nil {
		w.requireUser(q)
		return false
	}
	w.notFound(q)
	return false
}

// projectURL is the project's UI path.
func projectURL(p *store.Project) string { return "/" + p.FullPath }

// pageParam reads ?page= (1-based).
func pageParam(r *http.Request) int {
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if n < 1 {
		n = 1
	}
	if n > 100000 {
		n = 100000
	}
	return n
}
