package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// contractsCount is the number of pipelines of a project.
func (f *trigFixture) count() int { return len(f.s.trigPipelinesOf(f.appID, "per_page=100")) }

// TestTriggerExactCommit: sha with ref builds that commit when it is in the
// ref's history, on the trigger API and POST /pipeline; a commit of another
// branch, an unknown commit and a malformed sha are 400s that create
// nothing.
func TestTriggerExactCommit(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			f := newTrigFixture(t, kind)
			s := f.s
			api := s.URL + "/api/v4/projects/" + f.appID
			old := strings.TrimSpace(git(t, f.work, "rev-parse", "main"))
			other := strings.TrimSpace(git(t, f.work, "rev-parse", "broken"))
			trigWriteFile(t, f.work, "NEWS", "second\n")
			git(t, f.work, "add", "NEWS")
			git(t, f.work, "commit", "-q", "-m", "second commit")
			git(t, f.work, "push", "-q", s.authURL("grp/app"), "main")
			tip := strings.TrimSpace(git(t, f.work, "rev-parse", "main"))

			// An ancestor of main (a protected ref) builds exactly that commit.
			r := trigCurl(t, "-X", "POST", "-F", "token="+f.token, "-F", "ref=main", "-F", "sha="+old, api+"/trigger/pipeline").want(t, 201, "sha in main's history")
			if r.obj["sha"] != old || r.obj["ref"] != "main" {
				t.Fatalf("pipeline builds %v on %v, want %s on main: %s", r.obj["sha"], r.obj["ref"], old, r.raw)
			}
			var pl map[string]any
			if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", map[string]any{"ref": "main", "sha": strings.ToUpper(old)}, &pl); code != 201 || pl["sha"] != old {
				t.Fatalf("POST /pipeline with sha: %d %v", code, pl)
			}
			// Without sha: the tip.
			r = trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main").want(t, 201, "no sha")
			if r.obj["sha"] != tip {
				t.Fatalf("no sha builds %v, want tip %s", r.obj["sha"], tip)
			}

			before := f.count()
			for _, c := range []struct{ sha, msg string }{
				{other, "Commit " + other + " is not reachable from ref 'main'"},
				{strings.Repeat("ab", 20), "Commit not found"},
				{"HEAD~1", "sha must be a full commit SHA (40 hexadecimal characters)"},
				{old[:12], "sha must be a full commit SHA (40 hexadecimal characters)"},
			} {
				r := trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "main", "sha", c.sha).want(t, 400, "trigger sha "+c.sha)
				if !strings.Contains(r.raw, `{"message":{"base":["`+c.msg+`"]}}`) {
					t.Fatalf("trigger sha %s: %s, want %q", c.sha, r.raw, c.msg)
				}
				var body map[string]any
				if code, _ := s.call("POST", "/api/v4/projects/"+f.appID+"/pipeline", url.Values{"ref": {"main"}, "sha": {c.sha}}, &body); code != 400 {
					t.Fatalf("POST /pipeline sha %s: %d %v", c.sha, code, body)
				} else if m, _ := body["message"].(map[string]any); m == nil || m["base"].([]any)[0] != c.msg {
					t.Fatalf("POST /pipeline sha %s: %v, want %q", c.sha, body, c.msg)
				}
			}
			// The other branch's own commit is fine on that branch.
			trigForm(t, api+"/trigger/pipeline", "token", f.token, "ref", "broken", "sha", other).want(t, 400, "broken CI still refused for its YAML")
			if n := f.count(); n != before {
				t.Fatalf("refused calls created pipelines: %d -> %d", before, n)
			}
			// The refusals are in the deliveries log with their reason.
			var dl []map[string]any
			s.call("GET", "/api/v4/projects/"+f.appID+"/triggers/deliveries?per_page=100", nil, &dl)
			found := false
			for _, d := range dl {
				if strings.Contains(d["reason"].(string), "not reachable from ref 'main'") {
					found = true
				}
			}
			if !found {
				t.Fatalf("deliveries log lacks the refusal: %v", dl)
			}
		})
	}
}
