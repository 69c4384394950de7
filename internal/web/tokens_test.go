package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

func (f *fixture) userID(name string) int64 {
	u, err := f.st.UserByUsername(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return u.ID
}

func (f *fixture) tokensOf(name string) []*store.Token {
	toks, err := f.st.TokensOfUser(context.Background(), f.userID(name))
	if err != nil {
		f.t.Fatal(err)
	}
	return toks
}

// TestPersonalTokenCreatePostRedirectGet: creating a token answers with a
// redirect; the landing page shows it once, to this session only.
func TestPersonalTokenCreatePostRedirectGet(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, csrf := f.signIn(c, "alice", "password123")
	page := f.srv.URL + tokensPath
	exp := time.Now().AddDate(0, 1, 0).Format("2006-01-02")
	resp, err := c.PostForm(page, url.Values{"authenticity_token": {csrf}, "name": {"laptop"}, "scopes[]": {"read_api", "read_repository"}, "expires_at": {exp}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tokensPath {
		t.Fatalf("create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	patRE := regexp.MustCompile(`glpat-[0-9a-f]{40}`)
	other := f.client()
	f.signIn(other, "alice", "password123")
	for _, ck := range c.Jar.Cookies(mustURL(t, page)) {
		if ck.Name == newPATCookie {
			other.Jar.SetCookies(mustURL(t, page), []*http.Cookie{ck})
		}
	}
	if _, body := get(t, other, page); patRE.MatchString(body) {
		t.Fatal("another session was shown the token")
	}
	_, body := get(t, c, page)
	secret := patRE.FindString(body)
	toks := f.tokensOf("alice")
	if secret == "" || len(toks) != 1 {
		t.Fatalf("landing page: token %q, %d tokens", secret, len(toks))
	}
	k, err := f.st.TokenByHash(context.Background(), auth.Hash(secret))
	if err != nil || k.Name != "laptop" || strings.Join(k.Scopes, ",") != "read_api,read_repository" || k.ExpiresAt == nil || k.ExpiresAt.Format("2006-01-02") != exp {
		t.Fatalf("stored token %+v %v", k, err)
	}
	if !strings.Contains(body, `class="pat-name">laptop<`) || !strings.Contains(body, exp) {
		t.Fatalf("list does not show the token:\n%s", body)
	}
	if _, body := get(t, c, page); patRE.MatchString(body) {
		t.Fatal("reload showed the token again")
	}
	if n := len(f.tokensOf("alice")); n != 1 {
		t.Fatalf("%d tokens after reload", n)
	}
}

// TestPersonalTokenFormRules: the API's rules, a 422 with the form again,
// nothing written; anonymous visitors go to sign-in; no CSRF, no token.
func TestPersonalTokenFormRules(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, csrf := f.signIn(c, "alice", "password123")
	page := f.srv.URL + tokensPath
	past := time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no scopes", url.Values{"name": {"x"}}, "Select at least one scope."},
		{"unknown scope", url.Values{"name": {"x"}, "scopes[]": {"api", "sudo"}}, "Scopes does not have a valid value."},
		{"blank name", url.Values{"name": {"  "}, "scopes[]": {"api"}}, "Name is invalid"},
		{"control character", url.Values{"name": {"a\x01b"}, "scopes[]": {"api"}}, "Name is invalid"},
		{"past expiry", url.Values{"name": {"x"}, "scopes[]": {"api"}, "expires_at": {past}}, "Expiration date must be in the future."},
		{"not a date", url.Values{"name": {"x"}, "scopes[]": {"api"}, "expires_at": {"tomorrow"}}, "not a date"},
	} {
		tc.form.Set("authenticity_token", csrf)
		code, body := post(t, c, page, tc.form)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want 422 with %q", tc.name, code, tc.want)
		}
	}
	if code, _ := post(t, c, page, url.Values{"name": {"x"}, "scopes[]": {"api"}}); code != http.StatusForbidden {
		t.Errorf("without CSRF: %d", code)
	}
	if n := len(f.tokensOf("alice")); n != 0 {
		t.Fatalf("%d tokens written by refused forms", n)
	}
	code, _ := get(t, f.client(), page)
	if code != http.StatusFound {
		t.Fatalf("anonymous: %d", code)
	}
}

// TestPersonalTokenRevoke: a confirmation first; another user's token is a
// 404 and stays active; the owner's is revoked and leaves the list.
func TestPersonalTokenRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var eveTok, aliceTok *store.Token
	err := f.st.Write(ctx, func(tx *store.Tx) error {
		eveTok = &store.Token{UserID: f.userID("eve"), Name: "eve-ci", Scopes: []string{"api"}}
		aliceTok = &store.Token{UserID: f.userID("alice"), Name: "alice-ci", Scopes: []string{"api"}}
		if err := tx.CreateToken(ctx, eveTok, auth.Hash(auth.NewToken(auth.PATPrefix))); err != nil {
			return err
		}
		return tx.CreateToken(ctx, aliceTok, auth.Hash(auth.NewToken(auth.PATPrefix)))
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	_, csrf := f.signIn(c, "alice", "password123")
	_, body := get(t, c, f.srv.URL+tokensPath)
	if strings.Contains(body, "eve-ci") || !strings.Contains(body, "alice-ci") {
		t.Fatalf("list shows another user's token or not one's own:\n%s", body)
	}
	revoke := func(k *store.Token, confirmed bool) (int, string) {
		v := url.Values{"authenticity_token": {csrf}}
		if confirmed {
			v.Set("confirmed", "1")
		}
		return post(t, c, f.srv.URL+tokensPath+"/"+strconv.FormatInt(k.ID, 10)+"/revoke", v)
	}
	if code, _ := revoke(eveTok, true); code != http.StatusNotFound {
		t.Fatalf("revoking eve's token: %d", code)
	}
	if k, _ := f.st.TokenByID(ctx, eveTok.ID); k.Revoked {
		t.Fatal("alice revoked eve's token")
	}
	if code, body := revoke(aliceTok, false); code != http.StatusOK || !strings.Contains(body, "cannot be undone") {
		t.Fatalf("confirmation: %d", code)
	}
	if k, _ := f.st.TokenByID(ctx, aliceTok.ID); k.Revoked {
		t.Fatal("revoked without confirmation")
	}
	if code, _ := revoke(aliceTok, true); code != http.StatusSeeOther {
		t.Fatalf("revoke: %d", code)
	}
	if k, _ := f.st.TokenByID(ctx, aliceTok.ID); !k.Revoked {
		t.Fatal("not revoked")
	}
	if _, body := get(t, c, f.srv.URL+tokensPath); strings.Contains(body, `class="pat-name">alice-ci<`) || !strings.Contains(body, "Revoked personal access token alice-ci.") {
		t.Fatalf("after revoke:\n%s", body)
	}
}
