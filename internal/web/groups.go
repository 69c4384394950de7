package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/store"
)

type groupsData struct {
	Groups []*store.Namespace
	Total  int
}

type groupNewData struct {
	Form map[string]string
}

type memberRow struct {
	M         store.Member
	Role      string
	CanRemove bool
}

type groupMembersData struct {
	Group   *store.Namespace
	Members []memberRow
	Manage  bool
	Roles   []roleOption
	Form    map[string]string
}

type roleOption struct {
	Level int
	Name  string
}

// groupsList serves /dashboard/groups: the groups the viewer may see (all for
// admins), as GET /api/v4/groups lists them.
func (w *Web) groupsList(q *req) {
	if !w.requireUser(q) {
		return
	}
	gs, total, err := w.Store.ListGroups(q.ctx, q.user.ID, q.user.IsAdmin, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		w.internal(q, err)
		return
	}
	w.render(q, http.StatusOK, "groups", w.newPage(q, "Groups", "groups", groupsData{Groups: gs, Total: total}))
}

// newGroup serves /groups/new and creates on POST /groups with the API's
// rules (api.NewGroup.Check); the creator becomes its Owner.
func (w *Web) newGroup(q *req) {
	if !w.requireUser(q) {
		return
	}
	form := map[string]string{"visibility": "private"}
	show := func(status int, msg string) {
		pg := w.newPage(q, "New group", "groups", groupNewData{Form: form})
		pg.Error = msg
		w.render(q, status, "group_new", pg)
	}
	if q.r.Method != http.MethodPost {
		show(http.StatusOK, "")
		return
	}
	for _, k := range []string{"name", "path", "visibility", "description"} {
		form[k] = strings.TrimSpace(q.r.PostForm.Get(k))
	}
	ng := api.NewGroup{Name: form["name"], Path: form["path"], Visibility: form["visibility"], Description: form["description"]}
	if fe := ng.Check(); fe != nil {
		show(http.StatusUnprocessableEntity, fieldMessage(fe))
		return
	}
	g := &store.Namespace{Name: ng.Name, Path: ng.Path, FullPath: ng.Path, Visibility: ng.Visibility, Description: ng.Description}
	err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.CreateGroup(q.ctx, g, q.user.ID) })
	if errors.Is(err, store.ErrConflict) {
		show(http.StatusUnprocessableEntity, "Path has already been taken.")
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("group created", "group", g.FullPath, "user", q.user.Username, "via", "web")
	w.redirect(q, groupMembersURL(g), "Group '"+g.Name+"' was successfully created.")
}

func groupMembersURL(g *store.Namespace) string { return "/groups/" + g.FullPath + "/-/group_members" }

// groupRoute serves /groups/<path>/-/group_members[/<user id>/remove]. A
// group the viewer may not see is a 404; only Owners (and admins) change
// members, and nobody grants a role above their own (internal/access).
func (w *Web) groupRoute(q *req, rest string) {
	path, sub, _ := strings.Cut(strings.Trim(rest, "/"), "/-/")
	g, err := w.Store.NamespaceByPath(q.ctx, path)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.Kind != "group") {
		w.notFound(q)
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	level, err := access.New(w.Store).GroupLevel(q.ctx, g.ID, q.user)
	if err != nil {
		w.internal(q, err)
		return
	}
	if access.GroupHidden(g, q.user, level) {
		w.notFound(q)
		return
	}
	seg := strings.Split(sub, "/")
	get := q.r.Method == http.MethodGet || q.r.Method == http.MethodHead
	post := q.r.Method == http.MethodPost
	manage := q.user != nil && access.At(level, access.Owner)
	switch {
	case (sub == "" || sub == "group_members") && get:
		w.groupMembers(q, g, level, manage, nil, "")
	case sub == "group_members" && post:
		if !w.requireUser(q) {
			return
		}
		if !manage {
			w.fail(q, http.StatusForbidden, "Only the group's owners can change its members.")
			return
		}
		w.addGroupMember(q, g, level)
	case len(seg) == 3 && seg[0] == "group_members" && seg[2] == "remove" && post:
		if !w.requireUser(q) {
			return
		}
		if !manage {
			w.fail(q, http.StatusForbidden, "Only the group's owners can change its members.")
			return
		}
		uid, _ := strconv.ParseInt(seg[1], 10, 64)
		w.removeGroupMember(q, g, uid)
	default:
		w.notFound(q)
	}
}

func roleOptions() []roleOption {
	var out []roleOption
	for _, l := range []int{access.Guest, access.Reporter, access.Developer, access.Maintainer, access.Owner} {
		out = append(out, roleOption{Level: l, Name: access.RoleName(l)})
	}
	return out
}

func (w *Web) groupMembers(q *req, g *store.Namespace, level int, manage bool, form map[string]string, msg string) {
	ms, err := w.Store.GroupMembers(q.ctx, g.ID)
	if err != nil {
		w.internal(q, err)
		return
	}
	d := groupMembersData{Group: g, Manage: manage, Form: form}
	if form == nil {
		d.Form = map[string]string{"access_level": strconv.Itoa(access.Developer)}
	}
	for _, r := range roleOptions() {
		if !access.Outranks(r.Level, level) {
			d.Roles = append(d.Roles, r)
		}
	}
	for _, m := range ms {
		d.Members = append(d.Members, memberRow{M: m, Role: access.RoleName(m.AccessLevel), CanRemove: manage})
	}
	status := http.StatusOK
	pg := w.newPage(q, g.Name+" · Members", "groups", d)
	if msg != "" {
		status = http.StatusUnprocessableEntity
		pg.Error = msg
	}
	w.render(q, status, "group_members", pg)
}

// addGroupMember adds or updates a membership by username, with the API's
// rules: a valid role, none above the caller's own.
func (w *Web) addGroupMember(q *req, g *store.Namespace, level int) {
	f := q.r.PostForm
	form := map[string]string{"username": strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(f.Get("username")), "@")), "access_level": f.Get("access_level")}
	al, err := strconv.ParseInt(form["access_level"], 10, 64)
	if err != nil || !api.ValidAccessLevel(al) {
		w.groupMembers(q, g, level, true, form, "Choose a role.")
		return
	}
	if access.Outranks(int(al), level) {
		w.groupMembers(q, g, level, true, form, "You cannot give a role above your own ("+access.RoleName(level)+").")
		return
	}
	u, err := w.Store.UserByUsername(q.ctx, form["username"])
	if errors.Is(err, store.ErrNotFound) || form["username"] == "" {
		w.groupMembers(q, g, level, true, form, "No user with that username.")
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.SetGroupMember(q.ctx, g.ID, u.ID, int(al)) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("group member set", "group", g.FullPath, "member", u.Username, "access_level", al, "user", q.user.Username, "via", "web")
	w.redirect(q, groupMembersURL(g), "@"+u.Username+" is now "+access.RoleName(int(al))+" of "+g.Name+".")
}

const removeMemberConfirm = "Are you sure you want to remove this member from the group? They lose access to its projects that they had through it."

func (w *Web) removeGroupMember(q *req, g *store.Namespace, uid int64) {
	u, err := w.Store.UserByID(q.ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		w.notFound(q)
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	if q.r.PostForm.Get("confirmed") != "1" {
		d := confirmData{Message: removeMemberConfirm, Action: q.r.URL.Path, Button: "Remove @" + u.Username, Back: groupMembersURL(g)}
		w.render(q, http.StatusOK, "confirm", w.newPage(q, "Remove member", "groups", d))
		return
	}
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.RemoveGroupMember(q.ctx, g.ID, uid) })
	if errors.Is(err, store.ErrNotFound) {
		w.notFound(q)
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("group member removed", "group", g.FullPath, "member", u.Username, "user", q.user.Username, "via", "web")
	w.redirect(q, groupMembersURL(g), "@"+u.Username+" was removed from "+g.Name+".")
}
