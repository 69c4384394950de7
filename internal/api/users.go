package api

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

// UserBasic is GitLab's UserBasic entity.
func (a *API) userBasic(u *store.User) map[string]any {
	if u == nil {
		return nil
	}
	return map[string]any{
		"id":         u.ID,
		"username":   u.Username,
		"name":       u.Name,
		"state":      u.State,
		"locked":     false,
		"avatar_url": nil,
		"web_url":    a.ExternalURL + "/" + u.Username,
	}
}

func (a *API) userFull(u *store.User) map[string]any {
	m := a.userBasic(u)
	m["email"] = u.Email
	m["is_admin"] = u.IsAdmin
	m["created_at"] = isoTime(u.CreatedAt)
	m["bot"] = false
	return m
}

func (a *API) currentUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.userFull(c.user))
	return nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	search := c.params.String("search")
	if u := c.params.String("username"); u != "" {
		search = u
	}
	users, total, err := a.Store.ListUsers(c.ctx, search, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, u := range users {
		if un := c.params.String("username"); un != "" && !strings.EqualFold(un, u.Username) {
			continue
		}
		if c.user.IsAdmin {
			out = append(out, a.userFull(u))
		} else {
			out = append(out, a.userBasic(u))
		}
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	u, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	if c.user.IsAdmin {
		writeJSON(w, http.StatusOK, a.userFull(u))
	} else {
		writeJSON(w, http.StatusOK, a.userBasic(u))
	}
	return nil
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)

// validUsername applies GitLab's namespace path rules to a username.
func validUsername(s string) string {
	if !usernameRE.MatchString(s) || strings.HasSuffix(s, ".git") || strings.HasSuffix(s, ".atom") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.', '.git' or '.atom'."
	}
	if reservedTopLevel[strings.ToLower(s)] {
		return s + " is a reserved name"
	}
	return ""
}

func validText(s string, max int) bool {
	if !utf8.ValidString(s) || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireAdmin(); err != nil {
		return err
	}
	if err := c.params.Scalars("password", "admin"); err != nil {
		return err
	}
	username, err := c.params.Required("username")
	if err != nil {
		return err
	}
	name, err := c.params.Required("name")
	if err != nil {
		return err
	}
	email, err := c.params.Required("email")
	if err != nil {
		return err
	}
	if msg := validUsername(username); msg != "" {
		return errValidation("username", msg)
	}
	if !validText(name, 255) {
		return errValidation("name", "is invalid")
	}
	if !validText(email, 255) || !strings.Contains(email, "@") {
		return errValidation("email", "is invalid")
	}
	u := &store.User{Username: username, Name: name, Email: email}
	if admin, ok, err := c.params.Bool("admin"); err != nil {
		return err
	} else if ok {
		u.IsAdmin = admin
	}
	if pw := c.params.String("password"); pw != "" {
		if len(pw) < 8 || len(pw) > 128 {
			return errValidation("password", "is too short (minimum is 8 characters)")
		}
		if u.PasswordHash, err = auth.HashPassword(pw); err != nil {
			return err
		}
	}
	if _, err := a.Store.NamespaceByPath(c.ctx, username); err == nil {
		return errMessage(http.StatusConflict, "Username has already been taken")
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateUser(c.ctx, u) })
	if errors.Is(err, store.ErrConflict) {
		return errMessage(http.StatusConflict, "Username has already been taken")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.userFull(u))
	return nil
}

// updateUser is GitLab's PUT /users/:id (administrators): name, email,
// admin and password. A new password signs the user out of every browser.
// Kiln does not rename users (their namespace path is their username).
func (a *API) updateUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireAdmin(); err != nil {
		return err
	}
	if err := c.params.Scalars("name", "email", "password", "admin", "username"); err != nil {
		return err
	}
	u, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	if un, ok := c.params.Str("username"); ok && un != u.Username {
		return errValidation("username", "cannot be changed in Kiln")
	}
	if name, ok := c.params.Str("name"); ok {
		if name == "" || !validText(name, 255) {
			return errValidation("name", "is invalid")
		}
		u.Name = name
	}
	if email, ok := c.params.Str("email"); ok {
		if !validText(email, 255) || !strings.Contains(email, "@") {
			return errValidation("email", "is invalid")
		}
		u.Email = email
	}
	if admin, ok, err := c.params.Bool("admin"); err != nil {
		return err
	} else if ok {
		if !admin && u.ID == c.user.ID {
			return errValidation("admin", "cannot be removed from yourself")
		}
		u.IsAdmin = admin
	}
	var hash string
	if pw, ok := c.params.Str("password"); ok {
		if msg := PasswordProblem(pw); msg != "" {
			return errValidation("password", msg)
		}
		if hash, err = auth.HashPassword(pw); err != nil {
			return err
		}
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error {
		if err := tx.UpdateUser(c.ctx, u); err != nil {
			return err
		}
		if hash == "" {
			return nil
		}
		if err := tx.SetUserPassword(c.ctx, u.ID, hash); err != nil {
			return err
		}
		return tx.DeleteUserSessions(c.ctx, u.ID, "")
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("User")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.userFull(u))
	return nil
}

// PasswordProblem says what is wrong with a new password ("" if nothing).
func PasswordProblem(pw string) string {
	switch {
	case len(pw) < 8:
		return "is too short (minimum is 8 characters)"
	case len(pw) > 128:
		return "is too long (maximum is 128 characters)"
	}
	return ""
}

var validScopes = map[string]bool{"api": true, "read_api": true, "read_user": true, "read_repository": true, "write_repository": true}

// PersonalTokenScopes lists the scopes a personal access token may carry,
// in GitLab's order (the web form offers these).
func PersonalTokenScopes() []string {
	return []string{"api", "read_api", "read_user", "read_repository", "write_repository"}
}

// TokenProblem is what is wrong with a personal access token request. An
// empty Field means a parameter error (GitLab's 400 "<param> is missing"
// shape); otherwise it is a validation error on Field.
type TokenProblem struct {
	Field, Message string
}

// PersonalTokenProblem applies the rules of POST
// /api/v4/users/:id/personal_access_tokens to a new token's name, scopes
// and expiry; the web UI's form uses the same function. nil means valid.
func PersonalTokenProblem(name string, scopes []string, expires *time.Time, now time.Time) *TokenProblem {
	if !validText(name, 255) || strings.TrimSpace(name) == "" {
		return &TokenProblem{"name", "is invalid"}
	}
	if len(scopes) == 0 {
		return &TokenProblem{"", "scopes is missing"}
	}
	for _, s := range scopes {
		if !validScopes[s] {
			return &TokenProblem{"", "scopes does not have a valid value"}
		}
	}
	if expires != nil && !expires.After(now) {
		return &TokenProblem{"expires_at", "must be in the future"}
	}
	return nil
}

func (a *API) tokenJSON(k *store.Token, secret string) map[string]any {
	m := map[string]any{
		"id":           k.ID,
		"name":         k.Name,
		"revoked":      k.Revoked,
		"created_at":   isoTime(k.CreatedAt),
		"scopes":       k.Scopes,
		"user_id":      k.UserID,
		"last_used_at": isoTimePtr(k.LastUsedAt),
		"active":       k.Active(time.Now()),
		"expires_at":   nil,
	}
	if k.ExpiresAt != nil {
		m["expires_at"] = k.ExpiresAt.Format("2006-01-02")
	}
	if secret != "" {
		m["token"] = secret
	}
	return m
}

func (a *API) createUserToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireAdmin(); err != nil {
		return err
	}
	u, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	name, err := c.params.Required("name")
	if err != nil {
		return err
	}
	scopes, _, err := c.params.List("scopes")
	if err != nil {
		return err
	}
	exp, err := c.params.Date("expires_at")
	if err != nil {
		return err
	}
	if p := PersonalTokenProblem(name, scopes, exp, time.Now()); p != nil {
		if p.Field == "" {
			return errParam(p.Message)
		}
		return errValidation(p.Field, p.Message)
	}
	secret := auth.NewToken(auth.PATPrefix)
	k := &store.Token{UserID: u.ID, Name: name, Scopes: scopes, ExpiresAt: exp}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateToken(c.ctx, k, auth.Hash(secret)) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.tokenJSON(k, secret))
	return nil
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	uid := c.user.ID
	if c.user.IsAdmin {
		if v, ok, err := c.params.Int("user_id"); err != nil {
			return err
		} else if ok {
			uid = v
		}
	}
	toks, err := a.Store.TokensOfUser(c.ctx, uid)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, k := range toks {
		out = append(out, a.tokenJSON(k, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) selfToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if c.token == nil {
		return errUnauthorized
	}
	writeJSON(w, http.StatusOK, a.tokenJSON(c.token, ""))
	return nil
}

func (a *API) tokenForCaller(c *reqCtx, idStr string) (*store.Token, error) {
	if err := c.requireUser(); err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return nil, errNotFound("")
	}
	k, err := a.Store.TokenByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !access.ManagesToken(k.UserID, c.user)) {
		return nil, errNotFound("")
	}
	return k, err
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	k, err := a.tokenForCaller(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.tokenJSON(k, ""))
	return nil
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	k, err := a.tokenForCaller(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.RevokeToken(c.ctx, k.ID) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) revokeSelfToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if c.token == nil {
		return errUnauthorized
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.RevokeToken(c.ctx, c.token.ID) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pathUser is the user named by the route's :id, or GitLab's 404.
func (a *API) pathUser(r *http.Request, c *reqCtx) (*store.User, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, errNotFound("User")
	}
	u, err := a.Store.UserByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("User")
	}
	return u, err
}
