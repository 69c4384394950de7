package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/httplimit"
	"github.com/kilnci/kiln/internal/store"
)

const (
	sessionCookie = "_kiln_session"
	// preCSRFCookie protects the sign-in form itself (login CSRF), before a
	// session with its own token exists: double-submit of a random value.
	preCSRFCookie = "_kiln_csrf"
	flashCookie   = "_kiln_flash"
	csrfField     = "authenticity_token"
	// maxForm bounds form bodies; the largest form (variables) is far smaller.
	maxForm = 1 << 20
)

// session is the signed-in browser's state for one request.
type session struct {
	idHash string
	csrf   string
}

// SessionUser resolves the session cookie of a safe (GET/HEAD) request to
// its user, for the REST API's cookie authentication. Unsafe methods get
// nil: the API has no CSRF token, so a cookie must never authorize writes.
func (w *Web) SessionUser(r *http.Request) *store.User {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil
	}
	q := &req{r: r, ctx: r.Context()}
	w.loadSession(q)
	return q.user
}

func (w *Web) loadSession(q *req) {
	c, err := q.r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return
	}
	h := auth.Hash(c.Value)
	s, err := w.Store.SessionByHash(q.ctx, h)
	if err != nil {
		return
	}
	u, err := w.Store.UserByID(q.ctx, s.UserID)
	if err != nil || u.State != "active" {
		return
	}
	q.user, q.sess = u, &session{idHash: h, csrf: s.CSRF}
}

// checkCSRF verifies a POST: a same-origin Origin header when the browser
// sends one, and the form's token against the session's (or, before
// sign-in, against the pre-session cookie).
func (w *Web) checkCSRF(q *req) bool {
	if o := q.r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != q.r.Host {
			return false
		}
	}
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, maxForm)
	if err := q.r.ParseForm(); err != nil {
		return false
	}
	got := q.r.PostForm.Get(csrfField)
	if got == "" {
		return false
	}
	if q.sess != nil {
		return auth.Equal(got, q.sess.csrf)
	}
	c, err := q.r.Cookie(preCSRFCookie)
	return err == nil && c.Value != "" && auth.Equal(got, c.Value)
}

func (w *Web) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode, MaxAge: maxAge}
}

func (w *Web) setFlash(q *req, msg string) {
	http.SetCookie(q.w, w.cookie(flashCookie, url.QueryEscape(msg), 60))
}

func (w *Web) takeFlash(q *req) string {
	c, err := q.r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	http.SetCookie(q.w, w.cookie(flashCookie, "", -1))
	msg, _ := url.QueryUnescape(c.Value)
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}

// safeRedirect accepts only local paths, so that a crafted sign-in link
// cannot send the user to another site.
func safeRedirect(to string) string {
	// Browsers drop tabs and newlines and read "\" as "/", so "/\t/evil" or
	// "/\\evil" would leave the site: refuse every control character and
	// backslash, then require a path on this host.
	for i := 0; i < len(to); i++ {
		if to[i] < 0x20 || to[i] == 0x7f || to[i] == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(to)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") {
		return "/"
	}
	return to
}

type signInData struct {
	Username   string
	RedirectTo string
	PreCSRF    string
}

func (w *Web) signIn(q *req) {
	redirectTo := safeRedirect(q.r.FormValue("redirect_to"))
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		if q.user != nil {
			http.Redirect(q.w, q.r, redirectTo, http.StatusFound)
			return
		}
		w.renderSignIn(q, http.StatusOK, "", "", redirectTo)
	case http.MethodPost:
		username := strings.TrimSpace(q.r.PostForm.Get("username"))
		password := q.r.PostForm.Get("password")
		ip := httplimit.ClientAddr(q.r)
		// An address that used up its failures is refused before any
		// password work (the check is cheap, so is the refusal).
		if blocked, retry := w.Throttle.AddressBlocked(ip); blocked {
			q.w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
			w.renderSignIn(q, http.StatusTooManyRequests, "Too many failed sign-in attempts from this address. Try again later.", username, redirectTo)
			return
		}
		// Every other failure costs one password hash, the same whether the
		// user exists, is locked or mistyped, so timing tells nothing.
		locked, _ := w.Throttle.AccountLocked(username)
		u, err := w.Store.UserByUsername(q.ctx, username)
		stored, real := w.dummyHash, false
		if err == nil && u.PasswordHash != "" && !locked {
			stored, real = u.PasswordHash, true
		}
		ok, cerr := w.Throttle.CheckPassword(q.ctx, stored, password)
		if errors.Is(cerr, auth.ErrBusy) {
			q.w.Header().Set("Retry-After", "5")
			w.renderSignIn(q, http.StatusServiceUnavailable, "Too many sign-ins at once. Try again in a few seconds.", username, redirectTo)
			return
		}
		if locked {
			// Locks apply to any name, existing or not (Devise's message).
			w.renderSignIn(q, http.StatusUnauthorized, "Your account is locked.", username, redirectTo)
			return
		}
		if !ok || !real || u.State != "active" || len(password) > 1024 {
			w.Throttle.Fail(ip, username)
			w.renderSignIn(q, http.StatusUnauthorized, "Invalid login or password.", username, redirectTo)
			return
		}
		w.Throttle.Succeed(username)
		if err := w.startSession(q, u); err != nil {
			w.internal(q, err)
			return
		}
		http.Redirect(q.w, q.r, redirectTo, http.StatusSeeOther)
	default:
		http.Error(q.w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

func (w *Web) renderSignIn(q *req, status int, errMsg, username, redirectTo string) {
	tok := auth.NewToken("")
	http.SetCookie(q.w, w.cookie(preCSRFCookie, tok, 3600))
	pg := w.newPage(q, "Sign in", "", signInData{Username: username, RedirectTo: redirectTo, PreCSRF: tok})
	pg.Error = errMsg
	w.render(q, status, "sign_in", pg)
}

// startSession creates a fresh session (a new id on every sign-in, so a
// planted cookie can never be promoted to a signed-in one).
func (w *Web) startSession(q *req, u *store.User) error {
	id := auth.NewToken("")
	csrf := auth.NewToken("")
	err := w.Store.Write(q.ctx, func(tx *store.Tx) error {
		if q.sess != nil {
			if err := tx.DeleteSession(q.ctx, q.sess.idHash); err != nil {
				return err
			}
		}
		if err := tx.DeleteExpiredSessions(q.ctx, time.Now()); err != nil {
			return err
		}
		return tx.CreateSession(q.ctx, auth.Hash(id), u.ID, csrf, time.Now().Add(w.SessionTTL))
	})
	if err != nil {
		return err
	}
	http.SetCookie(q.w, w.cookie(sessionCookie, id, int(w.SessionTTL/time.Second)))
	http.SetCookie(q.w, w.cookie(preCSRFCookie, "", -1))
	return nil
}

func (w *Web) signOut(q *req) {
	if q.r.Method != http.MethodPost {
		http.Error(q.w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if q.sess != nil {
		err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.DeleteSession(q.ctx, q.sess.idHash) })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			w.internal(q, err)
			return
		}
	}
	http.SetCookie(q.w, w.cookie(sessionCookie, "", -1))
	http.Redirect(q.w, q.r, "/users/sign_in", http.StatusSeeOther)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
