package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

// tokensPath is GitLab's personal access tokens page.
const tokensPath = "/-/user_settings/personal_access_tokens"

// newPATCookie carries a just-created personal access token across the
// redirect that answers its form, like newTriggerCookie: sealed, bound to
// the session and the token, two minutes, cleared by the page that shows it.
const newPATCookie = "_kiln_new_pat"

type tokensData struct {
	Tokens   []*store.Token
	Scopes   []string
	NewToken string
	NewName  string
	// The form's values when it is shown again with an error.
	Name, ExpiresAt string
	Checked         map[string]bool
	FormError       string
	Now             time.Time
}

// tokensRoute serves the page (GET), creation (POST) and revocation (POST
// <id>/revoke, with a confirmation page without JavaScript). A user manages
// only their own tokens here; access.ManagesToken decides.
func (w *Web) tokensRoute(q *req, rest string) {
	if !w.requireUser(q) {
		return
	}
	get := q.r.Method == http.MethodGet || q.r.Method == http.MethodHead
	post := q.r.Method == http.MethodPost
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" && get:
		w.tokensPage(q, nil)
	case rest == "" && post:
		w.createPAT(q)
	case len(seg) == 2 && seg[1] == "revoke" && post:
		id, _ := strconv.ParseInt(seg[0], 10, 64)
		w.revokePAT(q, id)
	default:
		w.notFound(q)
	}
}

func (w *Web) tokensPage(q *req, d *tokensData) {
	status := http.StatusOK
	if d == nil {
		d = &tokensData{}
		d.NewToken, d.NewName = w.takeNewPAT(q)
	} else {
		status = http.StatusUnprocessableEntity
	}
	toks, err := w.Store.TokensOfUser(q.ctx, q.user.ID)
	if err != nil {
		w.internal(q, err)
		return
	}
	for _, k := range toks {
		if !k.Revoked {
			d.Tokens = append(d.Tokens, k)
		}
	}
	d.Scopes = api.PersonalTokenScopes()
	d.Now = time.Now()
	w.render(q, status, "tokens", w.newPage(q, "Personal access tokens", "tokens", d))
}

// createPAT applies the API's rules (api.PersonalTokenProblem) and answers
// with a redirect to the page, which shows the token once.
func (w *Web) createPAT(q *req) {
	f := q.r.PostForm
	d := &tokensData{Name: strings.TrimSpace(f.Get("name")), ExpiresAt: strings.TrimSpace(f.Get("expires_at")), Checked: map[string]bool{}}
	scopes := f["scopes[]"]
	for _, s := range scopes {
		d.Checked[s] = true
	}
	var exp *time.Time
	if d.ExpiresAt != "" {
		t, err := time.Parse("2006-01-02", d.ExpiresAt)
		if err != nil {
			d.FormError = "Expiration date is not a date (YYYY-MM-DD)."
			w.tokensPage(q, d)
			return
		}
		exp = &t
	}
	if p := api.PersonalTokenProblem(d.Name, scopes, exp, time.Now()); p != nil {
		switch {
		case p.Field == "name":
			d.FormError = "Name " + p.Message + ": it can't be blank or hold control characters (at most 255 bytes)."
		case p.Field == "expires_at":
			d.FormError = "Expiration date " + p.Message + "."
		case p.Message == "scopes is missing":
			d.FormError = "Select at least one scope."
		default:
			d.FormError = "Scopes " + strings.TrimPrefix(p.Message, "scopes ") + "."
		}
		w.tokensPage(q, d)
		return
	}
	secret := auth.NewToken(auth.PATPrefix)
	k := &store.Token{UserID: q.user.ID, Name: d.Name, Scopes: scopes, ExpiresAt: exp}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.CreateToken(q.ctx, k, auth.Hash(secret)) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("personal access token created", "user", q.user.Username, "token", k.ID, "scopes", strings.Join(scopes, ","), "via", "web")
	if w.Secrets != nil && q.sess != nil {
		plain := strings.Join([]string{q.sess.idHash, strconv.FormatInt(k.ID, 10), strconv.FormatInt(time.Now().Unix(), 10), secret}, "\n")
		http.SetCookie(q.w, w.cookie(newPATCookie, w.Secrets.Seal(plain), 120))
	}
	w.redirect(q, tokensPath, "")
}

// takeNewPAT returns the token created by this session's last form and its
// name, once; "" when there is none or it is not this user's.
func (w *Web) takeNewPAT(q *req) (secret, name string) {
	c, err := q.r.Cookie(newPATCookie)
	if err != nil || c.Value == "" {
		return "", ""
	}
	http.SetCookie(q.w, w.cookie(newPATCookie, "", -1))
	if w.Secrets == nil || q.sess == nil || len(c.Value) > 1024 {
		return "", ""
	}
	plain, err := w.Secrets.Open(c.Value)
	if err != nil {
		return "", ""
	}
	f := strings.Split(plain, "\n")
	if len(f) != 4 || f[0] != q.sess.idHash {
		return "", ""
	}
	at, _ := strconv.ParseInt(f[2], 10, 64)
	if time.Since(time.Unix(at, 0)) > 2*time.Minute {
		return "", ""
	}
	k, err := w.Store.TokenByHash(q.ctx, auth.Hash(f[3]))
	if err != nil || strconv.FormatInt(k.ID, 10) != f[1] || k.UserID != q.user.ID || k.Revoked {
		return "", ""
	}
	return f[3], k.Name
}

// revokeConfirm for personal access tokens is GitLab's text.
const revokePATConfirm = "Are you sure you want to revoke this personal access token? This action cannot be undone. Any tools that rely on this access token will stop working."

func (w *Web) revokePAT(q *req, id int64) {
	k, err := w.Store.TokenByID(q.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !access.ManagesToken(k.UserID, q.user)) {
		w.notFound(q)
		return
	} else if err != nil {
		w.internal(q, err)
		return
	}
	if q.r.PostForm.Get("confirmed") != "1" {
		d := confirmData{Message: revokePATConfirm, Action: q.r.URL.Path, Button: "Revoke token " + k.Name, Back: tokensPath}
		w.render(q, http.StatusOK, "confirm", w.newPage(q, "Revoke personal access token", "tokens", d))
		return
	}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.RevokeToken(q.ctx, k.ID) }); err != nil && !errors.Is(err, store.ErrNotFound) {
		w.internal(q, err)
		return
	}
	w.Log.Info("personal access token revoked", "user", q.user.Username, "token", k.ID, "via", "web")
	w.redirect(q, tokensPath, "Revoked personal access token "+k.Name+".")
}
