package e2e

import (
	"fmt"
	"testing"
)

// TestRunnerManagementFollowsMembership (issue #11, "ownership is
// project-scoped"): a maintainer who creates a project runner manages it
// only while they maintain the project. Demoted to developer or removed,
// they can no longer see, edit, pause, reset or delete it; another
// maintainer can. A runner the caller cannot see is 404 for every method,
// so PUT does not reveal it exists.
func TestRunnerManagementFollowsMembership(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "app")
			aliceID, alice := s.newUser("alice")
			bobID, bob := s.newUser("bob")
			_, eve := s.newUser("eve")
			setMember := func(uid int64, level int) {
				t.Helper()
				if code, _ := s.call("PUT", "/api/v4/projects/"+pid+"/members/"+fmt.Sprint(uid), map[string]any{"access_level": level}, nil); code != 200 {
					if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/members", map[string]any{"user_id": uid, "access_level": level}, nil); code != 201 {
						t.Fatalf("set member %d to %d: %d", uid, level, code)
					}
				}
			}
			setMember(aliceID, 40)
			setMember(bobID, 40)

			var created map[string]any
			if code, _ := s.callAs(alice, "POST", "/api/v4/user/runners", map[string]any{"runner_type": "project_type", "project_id": pid, "description": "alice's"}, &created); code != 201 {
				t.Fatalf("alice creates a project runner: %d %v", code, created)
			}
			rid := jsonID(created["id"])
			base := "/api/v4/runners/" + rid

			// every management call, with the status a manager gets
			manage := func(token string) map[string]int {
				got := map[string]int{}
				got["GET"], _ = s.callAs(token, "GET", base, nil, nil)
				got["PUT tags"], _ = s.callAs(token, "PUT", base, map[string]any{"tag_list": []string{"pwned"}}, nil)
				got["PUT pause"], _ = s.callAs(token, "PUT", base, map[string]any{"paused": true}, nil)
				got["reset token"], _ = s.callAs(token, "POST", base+"/reset_authentication_token", nil, nil)
				var mine []map[string]any
				s.callAs(token, "GET", "/api/v4/runners", nil, &mine)
				got["listed"] = 0
				for _, r := range mine {
					if jsonID(r["id"]) == rid {
						got["listed"] = 1
					}
				}
				return got
			}
			want := func(who string, got map[string]int, code int, listed int) {
				t.Helper()
				for k, v := range got {
					w := code
					switch {
					case k == "listed":
						w = listed
					case k == "GET" && code == 404:
						w = 404
					case k == "GET":
						w = 200
					case k == "reset token" && code != 404:
						w = 201
					case code != 404:
						w = 200
					}
					if v != w {
						t.Errorf("%s: %s = %d, want %d", who, k, v, w)
					}
				}
			}
			want("alice as maintainer", manage(alice), 200, 1)
			want("outsider", manage(eve), 404, 0)
			if code, _ := s.callAs(eve, "DELETE", base, nil, nil); code != 404 {
				t.Errorf("outsider deletes: %d, want 404", code)
			}

			setMember(aliceID, 30) // demoted to developer
			want("alice demoted to developer", manage(alice), 404, 0)
			if code, _ := s.callAs(alice, "DELETE", base, nil, nil); code != 404 {
				t.Errorf("demoted creator deletes: %d, want 404", code)
			}
			// Another maintainer manages the runner alice created.
			want("bob, maintainer", manage(bob), 200, 1)

			setMember(aliceID, 40)
			want("alice promoted again", manage(alice), 200, 1)
			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid+"/members/"+fmt.Sprint(aliceID), nil, nil); code != 204 {
				t.Fatalf("remove alice: %d", code)
			}
			want("alice removed", manage(alice), 404, 0)
			if code, _ := s.callAs(alice, "DELETE", base, nil, nil); code != 404 {
				t.Errorf("removed creator deletes: %d, want 404", code)
			}
			if code, _ := s.call("GET", base, nil, nil); code != 200 {
				t.Errorf("runner gone after the refused deletes: %d", code)
			}
			if code, _ := s.callAs(bob, "DELETE", base, nil, nil); code != 204 {
				t.Errorf("maintainer deletes: %d", code)
			}
		})
	}
}
