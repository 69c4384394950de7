package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

func (f *fixture) group(path string) *store.Namespace {
	g, err := f.st.NamespaceByPath(context.Background(), path)
	if err != nil {
		f.t.Fatalf("group %s: %v", path, err)
	}
	return g
}

func (f *fixture) members(g *store.Namespace) map[string]int {
	ms, err := f.st.GroupMembers(context.Background(), g.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range ms {
		out[m.User.Username] = m.AccessLevel
	}
	return out
}

// TestGroupCreateAndMembers: the API's rules on the form (422, nothing
// written), the creator is Owner, members added with a role and removed
// after a confirmation; the list shows the group.
func TestGroupCreateAndMembers(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, csrf := f.signIn(c, "alice", "password123")
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {"Team"}, "path": {"-bad"}}, "Path can contain only"},
		{url.Values{"name": {"Team"}, "path": {"admin"}}, "admin is a reserved name"},
		{url.Values{"name": {""}, "path": {"team"}}, "Name is invalid."},
		{url.Values{"name": {"Team"}, "path": {"team"}, "visibility": {"secret"}}, "Visibility does not have a valid value."},
	} {
		tc.form.Set("authenticity_token", csrf)
		if code, body := post(t, c, f.srv.URL+"/groups", tc.form); code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("%v: %d, want 422 with %q", tc.form, code, tc.want)
		}
	}
	if _, err := f.st.NamespaceByPath(context.Background(), "team"); err == nil {
		t.Fatal("a refused form created the group")
	}
	resp, err := c.PostForm(f.srv.URL+"/groups", url.Values{"authenticity_token": {csrf}, "name": {"Team"}, "path": {"team"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/groups/team/-/group_members" {
		t.Fatalf("create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	g := f.group("team")
	if g.Visibility != "private" || f.members(g)["alice"] != store.Owner {
		t.Fatalf("group %+v members %v", g, f.members(g))
	}
	if _, body := get(t, c, f.srv.URL+"/dashboard/groups"); !strings.Contains(body, `href="/groups/team/-/group_members"`) {
		t.Fatal("groups list does not show the new group")
	}
	membersURL := f.srv.URL + "/groups/team/-/group_members"
	if code, body := post(t, c, membersURL, url.Values{"authenticity_token": {csrf}, "username": {"nobody"}, "access_level": {"30"}}); code != 422 || !strings.Contains(body, "No user with that username.") {
		t.Fatalf("unknown user: %d", code)
	}
	if code, _ := post(t, c, membersURL, url.Values{"authenticity_token": {csrf}, "username": {"eve"}, "access_level": {"35"}}); code != 422 {
		t.Fatalf("invalid role: %d", code)
	}
	if code, _ := post(t, c, membersURL, url.Values{"authenticity_token": {csrf}, "username": {"@eve"}, "access_level": {"30"}}); code != http.StatusSeeOther {
		t.Fatalf("add eve: %d", code)
	}
	if f.members(g)["eve"] != store.Developer {
		t.Fatalf("members %v", f.members(g))
	}
	eve, _ := f.st.UserByUsername(context.Background(), "eve")
	remove := membersURL + "/" + strconv.FormatInt(eve.ID, 10) + "/remove"
	if code, body := post(t, c, remove, url.Values{"authenticity_token": {csrf}}); code != 200 || !strings.Contains(body, "Are you sure") {
		t.Fatalf("confirmation: %d", code)
	}
	if _, ok := f.members(g)["eve"]; !ok {
		t.Fatal("removed without confirmation")
	}
	if code, _ := post(t, c, remove, url.Values{"authenticity_token": {csrf}, "confirmed": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("remove: %d", code)
	}
	if _, ok := f.members(g)["eve"]; ok {
		t.Fatal("eve still a member")
	}
}

// TestGroupMembersAccess: a private group is a 404 to outsiders and
// anonymous visitors; a Maintainer sees members but cannot add, change or
// remove anyone (403, nothing written); nobody grants above their own role.
func TestGroupMembersAccess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice, _ := f.st.UserByUsername(ctx, "alice")
	eve, _ := f.st.UserByUsername(ctx, "eve")
	g := &store.Namespace{Name: "Ops", Path: "ops", FullPath: "ops", Visibility: "private"}
	if err := f.st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateGroup(ctx, g, 1); err != nil {
			return err
		}
		return tx.SetGroupMember(ctx, g.ID, alice.ID, store.Maintainer)
	}); err != nil {
		t.Fatal(err)
	}
	membersURL := f.srv.URL + "/groups/ops/-/group_members"
	ec := f.client()
	_, ecsrf := f.signIn(ec, "eve", "password123")
	if code, _ := get(t, ec, membersURL); code != 404 {
		t.Fatalf("outsider sees a private group: %d", code)
	}
	if code, _ := post(t, ec, membersURL, url.Values{"authenticity_token": {ecsrf}, "username": {"eve"}, "access_level": {"50"}}); code != 404 {
		t.Fatalf("outsider adds themself: %d", code)
	}
	if _, body := get(t, ec, f.srv.URL+"/dashboard/groups"); strings.Contains(body, "/groups/ops/") {
		t.Fatal("outsider's group list shows a private group")
	}
	if code, _ := get(t, f.client(), membersURL); code == 200 {
		t.Fatalf("anonymous sees a private group: %d", code)
	}
	ac := f.client()
	_, acsrf := f.signIn(ac, "alice", "password123")
	code, body := get(t, ac, membersURL)
	if code != 200 || !strings.Contains(body, "@root") || strings.Contains(body, "add-member-form") {
		t.Fatalf("maintainer's view: %d", code)
	}
	if code, _ := post(t, ac, membersURL, url.Values{"authenticity_token": {acsrf}, "username": {"eve"}, "access_level": {"30"}}); code != 403 {
		t.Fatalf("maintainer adds a member: %d", code)
	}
	if code, _ := post(t, ac, membersURL+"/1/remove", url.Values{"authenticity_token": {acsrf}, "confirmed": {"1"}}); code != 403 {
		t.Fatalf("maintainer removes the owner: %d", code)
	}
	if m := f.members(g); m["root"] != store.Owner || len(m) != 2 {
		t.Fatalf("members changed: %v", m)
	}
	_ = eve
}
