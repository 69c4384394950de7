package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

type adminData struct {
	Users     []*store.User
	UserPager pager
	Runners   []runnerRow
	Health    []HealthItem
	Jobs      map[string]int
	Form      map[string]string
}

// usernameRE is GitLab's username rule, simplified.
func usernameRE() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)
}

func (w *Web) admin(q *req, rest string) {
	if !w.requireUser(q) {
		return
	}
	if !q.user.IsAdmin {
		w.notFound(q)
		return
	}
	switch {
	case rest == "" && q.r.Method != http.MethodPost:
		w.adminPage(q, http.StatusOK, nil, "")
	case rest == "users" && q.r.Method == http.MethodPost:
		w.adminCreateUser(q)
	default:
		w.notFound(q)
	}
}

func (w *Web) adminPage(q *req, status int, form map[string]string, errMsg string) {
	n := pageParam(q.r)
	users, total, err := w.Store.ListUsers(q.ctx, "", store.Page{Number: n, PerPage: 50})
	if err != nil {
		w.internal(q, err)
		return
	}
	d := adminData{Users: users, UserPager: newPager(q.r, n, 50, total), Form: form}
	if d.Form == nil {
		d.Form = map[string]string{}
	}
	runners, _, err := w.Store.ListRunners(q.ctx, store.RunnerFilter{}, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		w.internal(q, err)
		return
	}
	for _, r := range runners {
		d.Runners = append(d.Runners, runnerRow{R: r, Online: runnerOnline(r)})
	}
	d.Health = w.health(q.ctx)
	d.Jobs, _ = w.Store.CountJobsByStatus(q.ctx)
	pg := w.newPage(q, "Admin", "admin", d)
	pg.Error = errMsg
	w.render(q, status, "admin", pg)
}

// health is the built-in check (database round trip) plus whatever the
// server reports.
func (w *Web) health(ctx context.Context) []HealthItem {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	item := HealthItem{Name: "Database (" + string(w.Store.Dialect) + ")", OK: true}
	if err := w.Store.DB().PingContext(ctx); err != nil {
		item.OK, item.Detail = false, err.Error()
	} else {
		item.Detail = "responded in " + time.Since(start).Round(time.Microsecond).String()
	}
	out := []HealthItem{item}
	if w.Health != nil {
		out = append(out, w.Health(ctx)...)
	}
	return out
}

func (w *Web) adminCreateUser(q *req) {
	f := q.r.PostForm
	form := map[string]string{}
	for _, k := range []string{"username", "name", "email", "admin"} {
		form[k] = strings.TrimSpace(f.Get(k))
	}
	password := f.Get("password")
	var msg string
	switch {
	case !usernameRE().MatchString(form["username"]) || strings.HasSuffix(form["username"], ".git"):
		msg = "Username can contain only letters, digits, '_', '-' and '.'."
	case form["name"] == "" || len(form["name"]) > 255:
		msg = "Name can't be blank."
	case !strings.Contains(form["email"], "@") || len(form["email"]) > 255:
		msg = "Email is invalid."
	case len(password) < 8 || len(password) > 1024:
		msg = "Password is too short (minimum is 8 characters)."
	}
	if msg == "" {
		if _, err := w.Store.UserByUsername(q.ctx, form["username"]); err == nil {
			msg = "Username has already been taken."
		} else if _, err := w.Store.NamespaceByPath(q.ctx, form["username"]); err == nil {
			msg = "Username has already been taken."
		}
	}
	if msg != "" {
		w.adminPage(q, http.StatusUnprocessableEntity, form, msg)
		return
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		w.internal(q, err)
		return
	}
	u := &store.User{Username: form["username"], Name: form["name"], Email: form["email"], IsAdmin: form["admin"] != "", PasswordHash: hash}
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.CreateUser(q.ctx, u) })
	if errors.Is(err, store.ErrConflict) {
		w.adminPage(q, http.StatusUnprocessableEntity, form, "Username has already been taken.")
		return
	}
	if err != nil {
		w.internal(q, err)
		return
	}
	w.redirect(q, "/admin#users", "User "+u.Username+" was created.")
}
