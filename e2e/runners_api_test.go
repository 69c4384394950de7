package e2e

import (
	"net/url"
	"testing"
)

// TestRunnerManagementAPI covers runner creation, listing, pause/resume,
// the legacy registration flow and the runner-token endpoints.
func TestRunnerManagementAPI(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	pid := newCIProject(t, s, "app")
	id, tok := createRunner(t, s, map[string]any{"runner_type": "project_type", "project_id": pid, "description": "r1", "tag_list": "a,b"})

	var got map[string]any
	if code, _ := s.call("GET", "/api/v4/runners/"+id, nil, &got); code != 200 || got["status"] != "never_contacted" || got["paused"] != false || len(got["tag_list"].([]any)) != 2 {
		t.Fatalf("get runner: %d %v", code, got)
	}
	// A runner verifies (kiln runner register / gitlab-runner register --token).
	var ver map[string]any
	if code, _ := s.callAs("", "POST", "/api/v4/runners/verify", map[string]any{"token": tok}, &ver); code != 200 || jsonID(ver["id"]) != id || ver["token_expires_at"] != nil {
		t.Fatalf("verify: %d %v", code, ver)
	}
	if code, _ := s.callAs("", "POST", "/api/v4/runners/verify", map[string]any{"token": "glrt-nope"}, nil); code != 403 {
		t.Fatalf("verify with a wrong token: %d", code)
	}
	// Pause through the API.
	if code, _ := s.call("PUT", "/api/v4/runners/"+id, map[string]any{"paused": true, "tag_list": []string{"c"}}, &got); code != 200 || got["paused"] != true || got["active"] != false {
		t.Fatalf("pause: %d %v", code, got)
	}
	var list []map[string]any
	if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/runners", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("project runners: %d %v", code, list)
	}
	if code, _ := s.call("GET", "/api/v4/runners?paused=true", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("my paused runners: %d %v", code, list)
	}
	// Hostile input: bad type, bad timeout, unknown runner.
	if code, _ := s.call("POST", "/api/v4/user/runners", map[string]any{"runner_type": "weird"}, nil); code != 400 {
		t.Errorf("bad runner_type: %d", code)
	}
	if code, _ := s.call("POST", "/api/v4/user/runners", map[string]any{"runner_type": "instance_type", "maximum_timeout": 5}, nil); code != 400 {
		t.Errorf("tiny maximum_timeout: %d", code)
	}
	if code, _ := s.call("GET", "/api/v4/runners/999999", nil, nil); code != 404 {
		t.Errorf("unknown runner: %d", code)
	}
	// A non-admin cannot create instance runners or list all runners.
	var u map[string]any
	s.call("POST", "/api/v4/users", url.Values{"username": {"bob"}, "name": {"Bob"}, "email": {"bob@example.com"}, "password": {"bobpassword123"}}, &u)
	var pat map[string]any
	s.call("POST", "/api/v4/users/"+jsonID(u["id"])+"/personal_access_tokens", url.Values{"name": {"t"}, "scopes[]": {"api"}}, &pat)
	bob, _ := pat["token"].(string)
	if bob == "" {
		t.Fatalf("no token for bob: %v %v", u, pat)
	}
	if code, _ := s.callAs(bob, "POST", "/api/v4/user/runners", map[string]any{"runner_type": "instance_type"}, nil); code != 403 {
		t.Errorf("non-admin instance runner: %d", code)
	}
	if code, _ := s.callAs(bob, "GET", "/api/v4/runners/all", nil, nil); code != 403 {
		t.Errorf("non-admin /runners/all: %d", code)
	}
	if code, _ := s.callAs(bob, "PUT", "/api/v4/runners/"+id, map[string]any{"paused": false}, nil); code != 404 && code != 403 {
		t.Errorf("non-member edits a project runner: %d", code)
	}

	// Legacy registration: an admin resets the registration token, a runner registers with it.
	var reg map[string]any
	if code, _ := s.call("POST", "/api/v4/runners/reset_registration_token", nil, &reg); code != 201 || reg["token"] == "" {
		t.Fatalf("reset registration token: %d %v", code, reg)
	}
	var nr map[string]any
	if code, _ := s.callAs("", "POST", "/api/v4/runners", map[string]any{"token": reg["token"], "description": "legacy", "tag_list": "x, y", "run_untagged": false}, &nr); code != 201 || nr["token_expires_at"] != nil {
		t.Fatalf("legacy register: %d %v", code, nr)
	}
	if code, _ := s.callAs("", "POST", "/api/v4/runners", map[string]any{"token": "GR1348941wrong"}, nil); code != 403 {
		t.Errorf("register with a wrong token: %d", code)
	}
	// Token rotation by the runner, then unregistration.
	var rot map[string]any
	if code, _ := s.callAs("", "POST", "/api/v4/runners/reset_authentication_token", map[string]any{"token": nr["token"]}, &rot); code != 201 || rot["token"] == nr["token"] {
		t.Fatalf("reset authentication token: %d %v", code, rot)
	}
	if code, _ := s.callAs("", "POST", "/api/v4/runners/verify", map[string]any{"token": nr["token"]}, nil); code != 403 {
		t.Errorf("old token still verifies: %d", code)
	}
	if code, _ := s.callAs("", "DELETE", "/api/v4/runners", map[string]any{"token": rot["token"]}, nil); code != 204 {
		t.Errorf("unregister: %d", code)
	}
	if code, _ := s.call("GET", "/api/v4/runners/"+jsonID(nr["id"]), nil, nil); code != 404 {
		t.Errorf("unregistered runner still there: %d", code)
	}
	if code, _ := s.call("DELETE", "/api/v4/runners/"+id, nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
}
