package e2e

import (
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

const scheduleCI = `
nightly:
  script: echo "mode=$MODE"
  only: [schedules]
build:
  script: echo build
  except: [schedules]
`

// TestSchedulesEndToEnd is issue #7 as a user meets it: a nightly schedule
// with a variable, run now with play, and a run missed while the server was
// down firing once on start.
func TestSchedulesEndToEnd(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := schedProject(t, s, "sched")
			work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": scheduleCI})
			git(t, work, "push", "-q", s.authURL("root/sched"), "main")
			base := "/api/v4/projects/" + pid + "/pipeline_schedules"

			var sc map[string]any
			code, _ := s.call("POST", base, url.Values{"description": {"Nightly build"}, "ref": {"main"}, "cron": {"30 2 * * *"}, "cron_timezone": {"America/New_York"}}, &sc)
			if code != 201 || sc["ref"] != "refs/heads/main" || sc["next_run_at"] == nil {
				t.Fatalf("create schedule: %d %v", code, sc)
			}
			one := base + "/" + jsonID(sc["id"])
			var bad map[string]any
			if code, _ := s.call("POST", base, url.Values{"description": {"x"}, "ref": {"main"}, "cron": {"* * *"}}, &bad); code != 400 || fmt.Sprint(bad) != "map[message:map[cron:[ is invalid syntax]]]" {
				t.Fatalf("bad cron: %d %v", code, bad)
			}
			var v map[string]any
			if code, _ := s.call("POST", one+"/variables", url.Values{"key": {"MODE"}, "value": {"nightly"}}, &v); code != 201 {
				t.Fatalf("create variable: %d %v", code, v)
			}
			var played map[string]any
			if code, _ := s.call("POST", one+"/play", nil, &played); code != 201 {
				t.Fatalf("play: %d %v", code, played)
			}
			var got map[string]any
			s.call("GET", one, nil, &got)
			last, _ := got["last_pipeline"].(map[string]any)
			if last == nil || last["source"] != "schedule" || last["ref"] != "main" {
				t.Fatalf("schedule after play: %v", got)
			}
			if vars, _ := got["variables"].([]any); len(vars) != 1 {
				t.Fatalf("variables: %v", got["variables"])
			}
			plPath := "/api/v4/projects/" + pid + "/pipelines/" + jsonID(last["id"])
			var jobs []map[string]any
			if code, _ := s.call("GET", plPath+"/jobs", nil, &jobs); code != 200 || len(jobs) != 1 || jobs[0]["name"] != "nightly" {
				t.Fatalf("jobs of the schedule pipeline: %d %v", code, jobs)
			}
			var pvars []map[string]any
			if code, _ := s.call("GET", plPath+"/variables", nil, &pvars); code != 200 || len(pvars) != 1 || pvars[0]["key"] != "MODE" || pvars[0]["value"] != "nightly" {
				t.Fatalf("pipeline variables: %d %v", code, pvars)
			}
			var pls []map[string]any
			if code, _ := s.call("GET", one+"/pipelines", nil, &pls); code != 200 || len(pls) != 1 {
				t.Fatalf("schedule pipelines: %d %v", code, pls)
			}

			// The server is down across many due times; on start the missed
			// run fires once, within a second or two, and the next run moves
			// past now.
			s.stop()
			db := openDB(t, s, kind)
			past := time.Now().Add(-3 * time.Hour).UnixMicro()
			if _, err := db.Exec(rebindFor(kind, `UPDATE pipeline_schedules SET next_run_at = ? WHERE id = ?`), past, int64(sc["id"].(float64))); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s.start()
			if !waitFor(t, 10*time.Second, "missed run", func() bool {
				s.call("GET", one+"/pipelines", nil, &pls)
				return len(pls) >= 2
			}) {
				t.Fatalf("the missed run did not fire: %v\n%s", pls, s.Log())
			}
			time.Sleep(1500 * time.Millisecond)
			s.call("GET", one+"/pipelines", nil, &pls)
			s.call("GET", one, nil, &got)
			if len(pls) != 2 || pls[1]["source"] != "schedule" {
				t.Fatalf("after downtime: %d pipelines %v", len(pls), pls)
			}
			if next := parseTime(t, got["next_run_at"]); !next.After(time.Now()) {
				t.Fatalf("next_run_at %v is not in the future", next)
			}
			var runs []map[string]any
			if code, _ := s.call("GET", one+"/runs", nil, &runs); code != 200 || len(runs) != 2 || runs[0]["kind"] != "schedule" || runs[1]["kind"] != "play" {
				t.Fatalf("runs: %d %v", code, runs)
			}
		})
	}
}

// schedProject creates root/<path> and returns its id.
func schedProject(t *testing.T, s *server, path string) string {
	t.Helper()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {path}, "path": {path}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	return jsonID(proj["id"])
}

// openDB opens the server's database directly (the server is stopped).
func openDB(t *testing.T, s *server, kind string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+filepath.Join(s.DataDir, "kiln.db")
	if kind == "postgres" {
		driver, dsn = "pgx", s.DB
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func rebindFor(kind, q string) string {
	if kind != "postgres" {
		return q
	}
	n := 0
	out := []byte{}
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}
