package e2e

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// replicas starts kind's server and, on PostgreSQL, a second replica on the
// same database and data dir (as TestScaleOut does). On SQLite, which one
// process serves, the one server is returned twice.
func replicas(t *testing.T, kind string, extra ...string) (a, b *server) {
	t.Helper()
	a = newServer(t, kind, extra...)
	a.start()
	if kind != "postgres" {
		return a, a
	}
	b = &server{t: t, DataDir: a.DataDir, DB: a.DB, Extra: a.Extra, Env: a.Env}
	b.addr = freeAddr(t)
	b.URL = "http://" + b.addr
	b.start()
	return a, b
}

// replicaProject makes a project with a one-job CI file and a trigger token
// (with rateLimit, 0 for none), through a.
func replicaProject(t *testing.T, a *server, path string, rateLimit int) (pid, token string) {
	t.Helper()
	pid = newCIProject(t, a, path)
	pushBranch(t, a, "root/"+path, "main", map[string]string{".gitlab-ci.yml": "job:\n  script: [\"true\"]\n"})
	var tr map[string]any
	if code, _ := a.call("POST", "/api/v4/projects/"+pid+"/triggers", map[string]any{"description": "replicas", "rate_limit": rateLimit}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	return pid, tr["token"].(string)
}

// TestPipelineIIDsAcrossReplicas: many concurrent triggers to one project,
// split across two replicas on one PostgreSQL database (on SQLite, one
// server): the pipelines' iids are unique and, sorted by id (creation
// order), strictly increasing. Before, each PostgreSQL replica reserved
// blocks of 64 iids, so iids interleaved across replicas.
func TestPipelineIIDsAcrossReplicas(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			a, b := replicas(t, kind, "--builtin-runners", "0")
			pid, token := replicaProject(t, a, "iids", 0)
			const clients, each = 8, 20
			var wg sync.WaitGroup
			for c := range clients {
				s := []*server{a, b}[c%2]
				wg.Go(func() {
					for range each {
						trigForm(t, s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", "token", token, "ref", "main").want(t, 201, "trigger")
					}
				})
			}
			wg.Wait()
			type pl struct{ id, iid int64 }
			var all []pl
			for page := 1; ; page++ {
				var got []map[string]any
				if code, _ := b.call("GET", "/api/v4/projects/"+pid+"/pipelines?per_page=100&page="+strconv.Itoa(page), nil, &got); code != 200 {
					t.Fatalf("list pipelines: %d", code)
				}
				for _, p := range got {
					id, _ := strconv.ParseInt(jsonID(p["id"]), 10, 64)
					iid, _ := strconv.ParseInt(jsonID(p["iid"]), 10, 64)
					all = append(all, pl{id, iid})
				}
				if len(got) < 100 {
					break
				}
			}
			// The push's own pipeline, plus every trigger's.
			if len(all) != clients*each+1 {
				t.Fatalf("%d pipelines, want %d", len(all), clients*each+1)
			}
			sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
			for i := 1; i < len(all); i++ {
				if all[i].iid <= all[i-1].iid {
					t.Fatalf("sorted by id, iid %d (id %d) is followed by iid %d (id %d)\n%v", all[i-1].iid, all[i-1].id, all[i].iid, all[i].id, fmt.Sprint(all))
				}
			}
		})
	}
}

// TestRateLimitsAcrossReplicas: on two replicas sharing one PostgreSQL
// database, a trigger token with rate_limit N gets exactly N pipelines
// across both, then 429 with Retry-After on either; 10 wrong passwords
// for one name, split across the two, lock the name on both (web sign-in
// and git). Before, each replica counted alone (2N pipelines; no lock).
func TestRateLimitsAcrossReplicas(t *testing.T) {
	a, b := replicas(t, "postgres", "--builtin-runners", "0")
	pid, token := replicaProject(t, a, "limited", 5)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for c := range 12 {
		s := []*server{a, b}[c%2]
		wg.Go(func() {
			r := trigForm(t, s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", "token", token, "ref", "main")
			mu.Lock()
			codes[r.code]++
			mu.Unlock()
			if r.code == 429 && r.hdr.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		})
	}
	wg.Wait()
	if codes[201] != 5 || codes[429] != 7 {
		t.Fatalf("answers %v, want 5×201 and 7×429", codes)
	}
	for _, s := range []*server{a, b} {
		trigForm(t, s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", "token", token, "ref", "main").want(t, 429, "after the limit, on "+s.URL)
	}
	var pls []map[string]any
	b.call("GET", "/api/v4/projects/"+pid+"/pipelines?source=trigger", nil, &pls)
	if len(pls) != 5 {
		t.Fatalf("%d triggered pipelines, want 5", len(pls))
	}

	// Sign-in: 10 failures, alternating replicas, lock root on both.
	for i := range 10 {
		s := []*server{a, b}[i%2]
		if code, _, _ := s.signInWeb(t, "root", fmt.Sprintf("guess-%d", i)); code != 401 {
			t.Fatalf("guess %d on %s: %d", i, s.URL, code)
		}
	}
	for _, s := range []*server{a, b} {
		code, ok, page := s.signInWeb(t, "root", "rootpassword1")
		if code != 401 || ok || !strings.Contains(page, "Your account is locked.") {
			t.Fatalf("%s: locked account signed in: %d session=%v", s.URL, code, ok)
		}
		if out, err := gitErr(t.TempDir(), "ls-remote", strings.Replace(s.authURL("root/limited"), rootToken, "rootpassword1", 1)); err == nil {
			t.Fatalf("%s: git with a locked account's password worked: %s", s.URL, out)
		}
	}
}

// TestScheduleChangeReachesOtherReplica: two replicas on one PostgreSQL
// database. Schedule X is made due in a few seconds behind both
// replicas' backs (in the database, as a schedule due soon that replica
// a's loop has not read); then schedule Y is edited through replica b,
// which announces the change, and b dies at once. Replica a, woken by the
// announcement, re-reads the earliest due time and fires X on time.
// Before, a noticed only at its next one-minute check: up to a minute
// late.
func TestScheduleChangeReachesOtherReplica(t *testing.T) {
	a, b := replicas(t, "postgres", "--builtin-runners", "0")
	pid := schedProject(t, a, "sched")
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": scheduleCI})
	git(t, work, "push", "-q", a.authURL("root/sched"), "main")
	base := "/api/v4/projects/" + pid + "/pipeline_schedules"
	ids := map[string]string{}
	for _, name := range []string{"X", "Y"} {
		var sc map[string]any
		if code, _ := b.call("POST", base, url.Values{"description": {name}, "ref": {"main"}, "cron": {"0 3 1 1 *"}}, &sc); code != 201 {
			t.Fatalf("create schedule %s: %d %v", name, code, sc)
		}
		ids[name] = jsonID(sc["id"])
	}
	time.Sleep(time.Second) // both loops have read the far due times
	db := openDB(t, a, "postgres")
	defer db.Close()
	due := time.Now().Add(4 * time.Second)
	x, _ := strconv.ParseInt(ids["X"], 10, 64)
	if _, err := db.Exec(`UPDATE pipeline_schedules SET next_run_at = $1 WHERE id = $2`, due.UnixMicro(), x); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.call("PUT", base+"/"+ids["Y"], url.Values{"description": {"Y, edited"}}, nil); code != 200 {
		t.Fatalf("edit Y: %d", code)
	}
	b.kill()
	var pls []map[string]any
	for time.Now().Before(due.Add(20 * time.Second)) {
		a.call("GET", base+"/"+ids["X"]+"/pipelines", nil, &pls)
		if len(pls) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(pls) == 0 {
		t.Fatalf("schedule X never fired on replica a\n%s", a.Log())
	}
	if late := time.Since(due); late > 3*time.Second {
		t.Fatalf("schedule X fired %s after it was due: replica a did not hear of the change", late.Round(100*time.Millisecond))
	}
}
