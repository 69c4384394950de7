package web

import (
	"errors"
	"net/http"

	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/httplimit"
	"github.com/kilnci/kiln/internal/store"
)

// passwordEdit serves GitLab's /-/user_settings/password/edit page; the form
// posts to /-/user_settings/password. The current password is required (a
// borrowed signed-in browser cannot lock its owner out), a wrong one counts
// as a failed sign-in for the throttle, and success signs out every other
// session of the user and answers with a redirect (post/redirect/get).
func (w *Web) passwordEdit(q *req) {
	if !w.requireUser(q) {
		return
	}
	show := func(status int, msg string) {
		pg := w.newPage(q, "Password", "password", nil)
		pg.Error = msg
		w.render(q, status, "password_edit", pg)
	}
	if q.r.Method != http.MethodPost {
		show(http.StatusOK, "")
		return
	}
	f := q.r.PostForm
	current, next, confirm := f.Get("current_password"), f.Get("new_password"), f.Get("password_confirmation")
	ip := httplimit.ClientAddr(q.r)
	if blocked, _ := w.Throttle.AddressBlocked(ip); blocked {
		show(http.StatusTooManyRequests, "Too many failed attempts from this address. Try again later.")
		return
	}
	ok, err := w.Throttle.CheckPassword(q.ctx, q.user.PasswordHash, current)
	if errors.Is(err, auth.ErrBusy) {
		show(http.StatusServiceUnavailable, "Too busy right now. Try again in a few seconds.")
		return
	}
	if !ok || q.user.PasswordHash == "" || len(current) > 1024 {
		w.Throttle.Fail(ip, q.user.Username)
		show(http.StatusUnprocessableEntity, "You must provide a valid current password.")
		return
	}
	if msg := api.PasswordProblem(next); msg != "" {
		show(http.StatusUnprocessableEntity, "Password "+msg+".")
		return
	}
	if next != confirm {
		show(http.StatusUnprocessableEntity, "Password confirmation doesn't match Password.")
		return
	}
	hash, err := auth.HashPassword(next)
	if err != nil {
		w.internal(q, err)
		return
	}
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error {
		if err := tx.SetUserPassword(q.ctx, q.user.ID, hash); err != nil {
			return err
		}
		return tx.DeleteUserSessions(q.ctx, q.user.ID, q.sess.idHash)
	})
	if err != nil {
		w.internal(q, err)
		return
	}
	w.redirect(q, "/-/user_settings/password/edit", "Password was successfully updated.")
}
