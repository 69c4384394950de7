package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/store"
)

// userCache looks users up once per request (lists show the same few
// people on every row).
type userCache struct {
	s *store.Store
	m map[int64]*store.User
}

func newUserCache(s *store.Store) *userCache { return &userCache{s: s, m: map[int64]*store.User{}} }

func (c *userCache) get(ctx context.Context, id int64) *store.User {
	if id == 0 {
		return nil
	}
	if u, ok := c.m[id]; ok {
		return u
	}
	u, err := c.s.UserByID(ctx, id)
	if err != nil {
		u = nil
	}
	c.m[id] = u
	return u
}

type dashboardData struct {
	Projects []*store.Project
	Pager    pager
}

func (w *Web) dashboard(q *req) {
	if !w.requireUser(q) {
		return
	}
	pg := pageParam(q.r)
	projects, total, err := w.Store.ListProjects(q.ctx, store.ProjectFilter{UserID: q.user.ID, Admin: q.user.IsAdmin, OrderBy: "updated_at", Search: q.r.URL.Query().Get("search")}, store.Page{Number: pg, PerPage: 20})
	if err != nil {
		w.internal(q, err)
		return
	}
	d := dashboardData{Projects: projects, Pager: newPager(q.r, pg, 20, total)}
	w.render(q, http.StatusOK, "dashboard", w.newPage(q, "Projects", "projects", d))
}

// Same rules as the API's project creation.
var projectPathRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)

type newProjectData struct {
	Namespaces []*store.Namespace
	Form       map[string]string
}

func (w *Web) newProject(q *req) {
	if !w.requireUser(q) {
		return
	}
	namespaces, err := w.creatableNamespaces(q)
	if err != nil {
		w.internal(q, err)
		return
	}
	form := map[string]string{"visibility": "private"}
	show := func(status int, msg string) {
		pg := w.newPage(q, "New project", "projects", newProjectData{Namespaces: namespaces, Form: form})
		pg.Error = msg
		w.render(q, status, "project_new", pg)
	}
	if q.r.Method != http.MethodPost {
		show(http.StatusOK, "")
		return
	}
	f := q.r.PostForm
	for _, k := range []string{"name", "path", "namespace_id", "visibility", "description", "default_branch"} {
		form[k] = strings.TrimSpace(f.Get(k))
	}
	// The API's rules, through the API's own check.
	np := api.NewProject{Name: form["name"], Path: form["path"], Description: form["description"], DefaultBranch: form["default_branch"]}
	if fe := np.Check(); fe != nil {
		show(http.StatusUnprocessableEntity, fieldMessage(fe))
		return
	}
	name, path := np.Name, np.Path
	var ns *store.Namespace
	nsID, _ := strconv.ParseInt(form["namespace_id"], 10, 64)
	for _, n := range namespaces {
		if n.ID == nsID || (nsID == 0 && n.Kind == "user" && n.OwnerID == q.user.ID) {
			ns = n
		}
	}
	if ns == nil {
		show(http.StatusUnprocessableEntity, "Choose a namespace you may create projects in.")
		return
	}
	vis := form["visibility"]
	if vis != "private" && vis != "internal" && vis != "public" {
		vis = "private"
	}
	p := &store.Project{NamespaceID: ns.ID, Name: name, Path: path, FullPath: api.ProjectFullPath(ns, path), Description: form["description"], Visibility: vis, DefaultBranch: form["default_branch"], CreatorID: q.user.ID}
	if _, err := w.Store.ProjectByPath(q.ctx, p.FullPath); err == nil {
		show(http.StatusUnprocessableEntity, "Path has already been taken.")
		return
	}
	if err := w.Repos.Create(q.ctx, p.FullPath); err != nil {
		show(http.StatusUnprocessableEntity, "Could not create the repository: "+err.Error())
		return
	}
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.CreateProject(q.ctx, p) })
	if err != nil {
		w.Repos.Delete(context.WithoutCancel(q.ctx), p.FullPath)
		if errors.Is(err, store.ErrConflict) {
			show(http.StatusUnprocessableEntity, "Path has already been taken.")
			return
		}
		w.internal(q, err)
		return
	}
	if p.DefaultBranch != "" {
		w.Repos.SetDefaultBranch(q.ctx, p.FullPath, p.DefaultBranch)
	}
	w.redirect(q, projectURL(p), "Project '"+p.Name+"' was successfully created.")
}

// fieldMessage words a refused field for the form, as GitLab's form does
// ("Path can contain only ...").
func fieldMessage(fe *api.FieldError) string {
	field := strings.ReplaceAll(fe.Field, "_", " ")
	return strings.ToUpper(field[:1]) + field[1:] + " " + fe.Message + "."
}

// creatableNamespaces are the viewer's own namespace and the groups where
// the viewer is at least Maintainer (all groups for admins).
func (w *Web) creatableNamespaces(q *req) ([]*store.Namespace, error) {
	own, err := w.Store.UserNamespace(q.ctx, q.user.ID)
	if err != nil {
		return nil, err
	}
	out := []*store.Namespace{own}
	groups, _, err := w.Store.ListGroups(q.ctx, q.user.ID, q.user.IsAdmin, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		level, err := access.New(w.Store).GroupLevel(q.ctx, g.ID, q.user)
		if err != nil {
			return nil, err
		}
		if access.At(level, access.Maintainer) {
			out = append(out, g)
		}
	}
	return out, nil
}

type projectHomeData struct {
	CloneURL  string
	Pipelines []pipelineRow
}

func (w *Web) projectHome(q *req) {
	var rows []pipelineRow
	if access.At(q.level, access.Reporter) { // guests of private projects see no pipelines
		pls, _, err := w.Store.ListPipelines(q.ctx, store.PipelineFilter{ProjectID: q.project.ID}, store.Page{Number: 1, PerPage: 5})
		if err != nil {
			w.internal(q, err)
			return
		}
		if rows, err = w.pipelineRows(q, pls); err != nil {
			w.internal(q, err)
			return
		}
	}
	d := projectHomeData{CloneURL: w.ExternalURL + "/" + q.project.FullPath + ".git", Pipelines: rows}
	w.render(q, http.StatusOK, "project", w.newPage(q, q.project.Name, "overview", d))
}
