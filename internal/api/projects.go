package api

import (
	"context"
	"errors"
	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/gitrepo"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// reservedTopLevel are names that cannot be top-level namespaces because
// Kiln's own routes (and GitLab's) live there.
var reservedTopLevel = map[string]bool{
	"-": true, "api": true, "admin": true, "users": true, "user": true, "help": true, "dashboard": true,
	"explore": true, "groups": true, "projects": true, "assets": true, "static": true, "login": true,
	"logout": true, "health": true, "metrics": true, "ci": true, "oauth": true, "search": true,
	"root-group": false, "public": true, "uploads": true, "favicon.ico": true, "robots.txt": true,
	".well-known": true, "jwt": true, "s": true, "v2": true,
}

// reservedProjectNames cannot be project paths because they collide with
// project sub-routes.
var reservedProjectNames = map[string]bool{"-": true, "badges": true, "blame": true, "blob": true, "builds": true, "commits": true, "create": true, "edit": true, "files": true, "find_file": true, "new": true, "preview": true, "raw": true, "refs": true, "tree": true, "update": true, "wikis": true}

var projectPathRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)

const pathRuleMsg = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'"

func validPath(s string) bool {
	return projectPathRE.MatchString(s) && !strings.HasSuffix(strings.ToLower(s), ".git") &&
		!strings.HasSuffix(strings.ToLower(s), ".atom") && !strings.Contains(s, "..") && !strings.HasSuffix(s, ".")
}

var visibilities = map[string]bool{"private": true, "internal": true, "public": true}

func (a *API) namespaceJSON(n *store.Namespace) map[string]any {
	return map[string]any{
		"id": n.ID, "name": n.Name, "path": n.Path, "kind": n.Kind, "full_path": n.FullPath,
		"parent_id": nil, "avatar_url": nil, "web_url": a.ExternalURL + "/" + n.FullPath,
	}
}

func (a *API) groupJSON(n *store.Namespace) map[string]any {
	m := a.namespaceJSON(n)
	m["description"] = n.Description
	m["visibility"] = n.Visibility
	m["full_name"] = n.Name
	m["created_at"] = isoTime(n.CreatedAt)
	delete(m, "kind")
	return m
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	groups, total, err := a.Store.ListGroups(c.ctx, c.user.ID, c.user.IsAdmin, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, g := range groups {
		out = append(out, a.groupJSON(g))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	if err := c.params.Scalars("name", "path", "description", "visibility"); err != nil {
		return err
	}
	name, err := c.params.Required("name")
	if err != nil {
		return err
	}
	path, err := c.params.Required("path")
	if err != nil {
		return err
	}
	if c.params.Has("parent_id") && c.params.Value("parent_id") != nil && c.params.String("parent_id") != "" {
		return errBadRequest("subgroups are not supported by Kiln yet")
	}
	ng := NewGroup{Name: name, Path: path, Visibility: c.params.String("visibility"), Description: c.params.String("description")}
	if fe := ng.Check(); fe != nil {
		if fe.Field == "visibility" {
			return errParam("visibility " + fe.Message)
		}
		return errValidation(fe.Field, fe.Message)
	}
	g := &store.Namespace{Name: ng.Name, Path: ng.Path, FullPath: ng.Path, Visibility: ng.Visibility, Description: ng.Description}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateGroup(c.ctx, g, c.user.ID) })
	if errors.Is(err, store.ErrConflict) {
		return errValidation("path", "has already been taken")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.groupJSON(g))
	return nil
}

// findGroup resolves :id (numeric or path) to a group the caller can see.
func (a *API) findGroup(c *reqCtx, id string) (*store.Namespace, int, error) {
	var g *store.Namespace
	var err error
	if n, perr := strconv.ParseInt(id, 10, 64); perr == nil {
		g, err = a.Store.NamespaceByID(c.ctx, n)
	} else {
		g, err = a.Store.NamespaceByPath(c.ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.Kind != "group") {
		return nil, 0, errNotFound("Group")
	} else if err != nil {
		return nil, 0, err
	}
	level, err := access.New(a.Store).GroupLevel(c.ctx, g.ID, c.user)
	if err != nil {
		return nil, 0, err
	}
	if access.GroupHidden(g, c.user, level) {
		return nil, 0, errNotFound("Group")
	}
	return g, level, nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	g, _, err := a.findGroup(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.groupJSON(g))
	return nil
}

func (a *API) memberJSON(m store.Member) map[string]any {
	j := a.userBasic(m.User)
	j["access_level"] = m.AccessLevel
	j["created_at"] = isoTime(m.CreatedAt)
	j["expires_at"] = nil
	return j
}

// writeMembers answers a member list (or the error loading it).
func (a *API) writeMembers(w http.ResponseWriter, ms []store.Member, err error) error {
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, m := range ms {
		out = append(out, a.memberJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listGroupMembers(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	g, _, err := a.findGroup(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	ms, err := a.Store.GroupMembers(c.ctx, g.ID)
	return a.writeMembers(w, ms, err)
}

var accessLevels = map[int64]bool{10: true, 20: true, 30: true, 40: true, 50: true}

// memberParams reads user_id and access_level for member endpoints.
func (a *API) memberParams(r *http.Request, c *reqCtx) (*store.User, int, error) {
	uidStr := r.PathValue("user_id")
	if uidStr == "" {
		s, err := c.params.Required("user_id")
		if err != nil {
			return nil, 0, err
		}
		uidStr = s
	}
	uid, err := strconv.ParseInt(uidStr, 10, 64)
	if err != nil {
		return nil, 0, errParam("user_id is invalid")
	}
	level, ok, err := c.params.Int("access_level")
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, errParam("access_level is missing")
	}
	if !accessLevels[level] {
		return nil, 0, errParam("access_level does not have a valid value")
	}
	u, err := a.Store.UserByID(c.ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, errNotFound("User")
	}
	return u, int(level), err
}

func (a *API) addGroupMember(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	g, level, err := a.findGroup(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !access.At(level, access.Owner) {
		return errForbidden
	}
	return a.setMember(w, r, c, access.Owner, nil, func(tx *store.Tx, u *store.User, al int) error { return tx.SetGroupMember(c.ctx, g.ID, u.ID, al) })
}

// setMember reads user_id and access_level, refuses levels above the
// caller's own, stores the membership with set, and answers as GitLab does
// (201 on POST, 200 on PUT).
func (a *API) setMember(w http.ResponseWriter, r *http.Request, c *reqCtx, callerLevel int, current func(*store.User) int, set func(*store.Tx, *store.User, int) error) error {
	u, al, err := a.memberParams(r, c)
	if err != nil {
		return err
	}
	if al > callerLevel {
		return errForbidden
	}
	if current != nil && current(u) > callerLevel {
		// Nobody changes the membership of someone above them.
		return errForbidden
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return set(tx, u, al) }); err != nil {
		return err
	}
	status := http.StatusCreated
	if r.Method == http.MethodPut {
		status = http.StatusOK
	}
	writeJSON(w, status, a.memberJSON(store.Member{User: u, AccessLevel: al, CreatedAt: time.Now()}))
	return nil
}

func (a *API) removeGroupMember(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	g, level, err := a.findGroup(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !access.At(level, access.Owner) {
		return errForbidden
	}
	uid, _ := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.RemoveGroupMember(c.ctx, g.ID, uid) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Member")
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ProjectJSON renders GitLab's Project entity.
func (a *API) ProjectJSON(ctx context.Context, p *store.Project) map[string]any {
	ns, _ := a.Store.NamespaceByID(ctx, p.NamespaceID)
	var nsJSON map[string]any
	nameWithNS := p.Name
	fullPath := p.FullPath
	if ns != nil {
		nsJSON = a.namespaceJSON(ns)
		nameWithNS = ns.Name + " / " + p.Name
		fullPath = ns.FullPath + "/" + p.Path
	}
	var defaultBranch any = p.DefaultBranch
	if p.DefaultBranch == "" {
		defaultBranch = nil
	}
	web := a.ExternalURL + "/" + fullPath
	return map[string]any{
		"id": p.ID, "name": p.Name, "path": p.Path, "description": p.Description,
		"name_with_namespace": nameWithNS, "path_with_namespace": fullPath,
		"created_at": isoTime(p.CreatedAt), "last_activity_at": isoTime(p.UpdatedAt),
		"default_branch": defaultBranch, "visibility": p.Visibility, "creator_id": p.CreatorID,
		"http_url_to_repo": web + ".git", "ssh_url_to_repo": nil, "web_url": web,
		"readme_url": nil, "avatar_url": nil, "forks_count": 0, "star_count": 0,
		"namespace": nsJSON, "archived": false, "empty_repo": p.DefaultBranch == "",
		"jobs_enabled": true, "builds_access_level": "enabled", "ci_config_path": nilIfEmpty(p.CIConfigPath),
		"ci_job_token_scope_enabled": p.JobTokenAllowlist, "shared_runners_enabled": true, "ci_separated_caches": p.SeparatedCaches,
		"ci_pipeline_variables_minimum_override_role": p.VariablesMinRole,
		"_links": map[string]any{"self": a.ExternalURL + "/api/v4/projects/" + strconv.FormatInt(p.ID, 10)},
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (a *API) listProjects(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	page, err := paging(r)
	if err != nil {
		return err
	}
	f := store.ProjectFilter{Search: c.params.String("search"), OrderBy: c.params.String("order_by"), Sort: c.params.String("sort")}
	if c.user != nil {
		f.UserID, f.Admin = c.user.ID, c.user.IsAdmin
	}
	if m, _, err := c.params.Bool("membership"); err != nil {
		return err
	} else if m {
		if c.user == nil {
			return errUnauthorized
		}
		f.Membership = true
	}
	if f.OrderBy != "" && !map[string]bool{"id": true, "name": true, "path": true, "created_at": true, "updated_at": true, "last_activity_at": true}[f.OrderBy] {
		return errParam("order_by does not have a valid value")
	}
	if f.Sort != "" && f.Sort != "asc" && f.Sort != "desc" {
		return errParam("sort does not have a valid value")
	}
	if !validText(f.Search, 255) {
		return errParam("search is invalid")
	}
	ps, total, err := a.Store.ListProjects(c.ctx, f, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, p := range ps {
		out = append(out, a.ProjectJSON(c.ctx, p))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	if err := c.params.Scalars("name", "path", "description", "visibility", "namespace_id", "default_branch"); err != nil {
		return err
	}
	name := c.params.String("name")
	path := c.params.String("path")
	if name == "" && path == "" {
		return errParam("name, path are missing, at least one parameter must be provided")
	}
	np := NewProject{Name: name, Path: path, Description: c.params.String("description"), DefaultBranch: c.params.String("default_branch")}
	if fe := np.Check(); fe != nil {
		return errValidation(fe.Field, fe.Message)
	}
	name, path = np.Name, np.Path
	vis := c.params.String("visibility")
	if vis == "" {
		vis = "private"
	}
	if !visibilities[vis] {
		return errParam("visibility does not have a valid value")
	}
	var ns *store.Namespace
	var err error
	if nsid := c.params.String("namespace_id"); nsid != "" {
		if n, perr := strconv.ParseInt(nsid, 10, 64); perr == nil {
			ns, err = a.Store.NamespaceByID(c.ctx, n)
		} else {
			ns, err = a.Store.NamespaceByPath(c.ctx, nsid)
		}
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Namespace")
		} else if err != nil {
			return err
		}
		if ns.Kind == "group" {
			level, err := access.New(a.Store).GroupLevel(c.ctx, ns.ID, c.user)
			if err != nil {
				return err
			}
			if !access.At(level, access.Maintainer) {
				if access.GroupHidden(ns, c.user, level) {
					return errNotFound("Namespace")
				}
				return errForbidden
			}
		} else if ns.OwnerID != c.user.ID && !c.user.IsAdmin {
			return errForbidden
		}
	} else {
		if ns, err = a.Store.UserNamespace(c.ctx, c.user.ID); err != nil {
			return err
		}
	}
	branch, desc := np.DefaultBranch, np.Description
	p := &store.Project{NamespaceID: ns.ID, Name: name, Path: path, FullPath: ProjectFullPath(ns, path),
		Description: desc, Visibility: vis, DefaultBranch: branch, CreatorID: c.user.ID}
	if _, err := a.Store.ProjectByPath(c.ctx, p.FullPath); err == nil {
		return errMessage(http.StatusBadRequest, map[string][]string{"name": {"has already been taken"}, "path": {"has already been taken"}})
	}
	if err := a.Repos.Create(c.ctx, p.FullPath); err != nil {
		return errMessage(http.StatusBadRequest, map[string][]string{"path": {"could not create the repository: " + err.Error()}})
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateProject(c.ctx, p) })
	if err != nil {
		a.Repos.Delete(context.WithoutCancel(c.ctx), p.FullPath)
		if errors.Is(err, store.ErrConflict) {
			return errMessage(http.StatusBadRequest, map[string][]string{"path": {"has already been taken"}})
		}
		return err
	}
	if branch != "" {
		a.Repos.SetDefaultBranch(c.ctx, p.FullPath, branch)
	}
	writeJSON(w, http.StatusCreated, a.ProjectJSON(c.ctx, p))
	return nil
}

// NewProject is what creating a project takes from a user; the API and the
// web form both check it with Check, so both refuse the same input.
type NewGroup struct {
	Name, Path, Visibility, Description string
}

// Check validates a new top-level group as POST /api/v4/groups does (the web
// UI's form calls it too); an empty visibility becomes private.
func (n *NewGroup) Check() *FieldError {
	if n.Name == "" || !validText(n.Name, 255) {
		return &FieldError{"name", "is invalid"}
	}
	if !validPath(n.Path) {
		return &FieldError{"path", pathRuleMsg}
	}
	if reservedTopLevel[strings.ToLower(n.Path)] {
		return &FieldError{"path", n.Path + " is a reserved name"}
	}
	vis := n.Visibility
	if vis == "" {
		vis = "private"
	}
	n.Visibility = vis
	if !visibilities[vis] {
		return &FieldError{"visibility", "does not have a valid value"}
	}
	if !validText(n.Description, 2000) {
		return &FieldError{"description", "is invalid"}
	}
	return nil
}

// ValidAccessLevel reports whether level is one of GitLab's member roles
// (10 Guest .. 50 Owner).
func ValidAccessLevel(level int64) bool { return accessLevels[level] }

// NewProject is a project creation request.
type NewProject struct {
	Name, Path, Description, DefaultBranch string
}

// FieldError is a refused field and GitLab's message for it.
type FieldError struct{ Field, Message string }

// Check derives a missing name or path from the other and validates all
// fields as GitLab does (paths: letters, digits, '_', '-', '.'; reserved
// names; no control characters; default_branch a valid ref name).
func (n *NewProject) Check() *FieldError {
	if n.Path == "" {
		n.Path = strings.Trim(regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(n.Name, "-"), "-.")
	}
	if n.Name == "" {
		n.Name = n.Path
	}
	if n.Name == "" || !validText(n.Name, 255) {
		return &FieldError{"name", "is invalid"}
	}
	if !validPath(n.Path) || reservedProjectNames[strings.ToLower(n.Path)] {
		return &FieldError{"path", pathRuleMsg}
	}
	if n.DefaultBranch != "" && !validRefName(n.DefaultBranch) {
		return &FieldError{"default_branch", "is invalid"}
	}
	if !validText(n.Description, 2000) {
		return &FieldError{"description", "is invalid"}
	}
	return nil
}

// ProjectFullPath is the path a project is stored and its repository kept
// under. Lookups are case-insensitive, as in GitLab, so it is lower-cased:
// "Group/MyApp" and "group/myapp" are one project, and git, the API and the
// UI all reach the same repository. The project's own path keeps its case
// for display.
func ProjectFullPath(ns *store.Namespace, path string) string {
	return strings.ToLower(ns.FullPath + "/" + path)
}

// validRefName checks a branch or tag name given by a user with GitLab's
// rules (gitrepo.CheckNewRefName: check-ref-format, and no "refs/" prefix,
// "HEAD" or hexadecimal object-id-like names).
func validRefName(s string) bool {
	return len(s) <= 255 && gitrepo.CheckNewRefName(s) == nil
}

// FindProject resolves :id (numeric or URL-encoded path) to a project the
// user can see, with the user's access level. Projects the caller cannot see
// are 404, never 403, so that their existence does not leak.
func (a *API) FindProject(ctx context.Context, u *store.User, id string) (*store.Project, int, error) {
	var p *store.Project
	var err error
	if n, perr := strconv.ParseInt(id, 10, 64); perr == nil {
		p, err = a.Store.ProjectByID(ctx, n)
	} else {
		p, err = a.Store.ProjectByPath(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, errNotFound("Project")
	} else if err != nil {
		return nil, 0, err
	}
	level, err := access.New(a.Store).Level(ctx, p, u)
	if err != nil {
		return nil, 0, err
	}
	if access.Hidden(p, u, level) {
		return nil, 0, errNotFound("Project")
	}
	return p, level, nil
}

// project resolves the {id} path value and checks the minimum access level.
// Public/internal projects grant read (level Guest) to anyone who can see them.
func (a *API) project(r *http.Request, c *reqCtx, min int) (*store.Project, int, error) {
	p, level, err := a.FindProject(c.ctx, c.user, r.PathValue("id"))
	if err != nil {
		return nil, 0, err
	}
	// Anyone who can see a public/internal project reads its code and
	// pipelines; a guest member must not get less than an outsider.
	if !access.At(access.Effective(p, c.user, level), min) {
		if c.user == nil {
			return nil, 0, errUnauthorized
		}
		return nil, 0, errForbidden
	}
	return p, level, nil
}

func (a *API) getProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, level, err := a.project(r, c, access.Guest)
	if err != nil {
		return err
	}
	j := a.ProjectJSON(c.ctx, p)
	j["permissions"] = map[string]any{"project_access": map[string]any{"access_level": level}, "group_access": nil}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (a *API) updateProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	if err := c.params.Scalars("name", "description", "visibility", "default_branch", "ci_config_path"); err != nil {
		return err
	}
	if v, ok := c.params.Str("name"); ok {
		if v == "" || !validText(v, 255) {
			return errValidation("name", "is invalid")
		}
		p.Name = v
	}
	if v, ok := c.params.Str("description"); ok {
		if !validText(v, 2000) {
			return errValidation("description", "is invalid")
		}
		p.Description = v
	}
	if v, ok := c.params.Str("visibility"); ok {
		if !visibilities[v] {
			return errParam("visibility does not have a valid value")
		}
		// Only owners change visibility (GitLab: a maintainer making a
		// private project public was treated as a vulnerability).
		if v != p.Visibility && !access.At(level, access.Owner) {
			return errForbidden
		}
		p.Visibility = v
	}
	if v, ok := c.params.Str("default_branch"); ok {
		if !validRefName(v) {
			return errValidation("default_branch", "is invalid")
		}
		p.DefaultBranch = v
	}
	if v, ok := c.params.Str("ci_config_path"); ok {
		if v != "" && (!validText(v, 255) || strings.Contains(v, "..") || strings.HasPrefix(v, "/")) {
			return errValidation("ci_config_path", "is invalid")
		}
		p.CIConfigPath = v
	}
	if v, ok, err := c.params.Bool("ci_job_token_scope_enabled"); err != nil {
		return err
	} else if ok {
		p.JobTokenAllowlist = v
	}
	if v, ok, err := c.params.Bool("ci_separated_caches"); err != nil {
		return err
	} else if ok {
		p.SeparatedCaches = v
	}
	if v, ok := c.params.Str("ci_pipeline_variables_minimum_override_role"); ok || c.params.Has("ci_pipeline_variables_minimum_override_role") {
		if !access.ValidPipelineVariablesRole(v) {
			return errParam("ci_pipeline_variables_minimum_override_role does not have a valid value")
		}
		p.VariablesMinRole = v
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateProject(c.ctx, p) }); err != nil {
		return err
	}
	if c.params.Has("default_branch") {
		a.Repos.SetDefaultBranch(c.ctx, p.FullPath, p.DefaultBranch)
	}
	writeJSON(w, http.StatusOK, a.ProjectJSON(c.ctx, p))
	return nil
}

func (a *API) deleteProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Owner)
	if err != nil {
		return err
	}
	// One transaction deletes the rows and the project's runners and queues
	// its files; the sweeper then removes the repository, traces,
	// artifacts, caches and build directories (and again at the next start
	// if the server dies before it is done).
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteProject(c.ctx, p.ID) }); err != nil {
		return err
	}
	if a.Runners.Changed != nil {
		a.Runners.Changed()
	}
	a.filesDeleted(c.ctx)
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "202 Accepted"})
	return nil
}

func (a *API) listProjectMembers(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Guest)
	if err != nil {
		return err
	}
	ms, err := a.Store.ProjectMembers(c.ctx, p.ID)
	return a.writeMembers(w, ms, err)
}

func (a *API) addProjectMember(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	current := func(u *store.User) int { l, _ := access.New(a.Store).Level(c.ctx, p, u); return l }
	return a.setMember(w, r, c, level, current, func(tx *store.Tx, u *store.User, al int) error { return tx.SetProjectMember(c.ctx, p.ID, u.ID, al) })
}

func (a *API) removeProjectMember(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	uid, _ := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if target, err := a.Store.UserByID(c.ctx, uid); err == nil {
		if l, _ := access.New(a.Store).Level(c.ctx, p, target); access.Outranks(l, level) {
			return errForbidden // a maintainer cannot remove an owner
		}
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.RemoveProjectMember(c.ctx, p.ID, uid) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Member")
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
