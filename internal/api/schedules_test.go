package api

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kilnci/kiln/internal/schedule"
	"github.com/kilnci/kiln/internal/store"
)

const scheduleCI = `
nightly:
  script: echo $MODE
  only: [schedules]
build:
  script: echo build
  except: [schedules]
`

// countingHooks is the real scheduler, counting wake-ups.
type countingHooks struct {
	*schedule.Scheduler
	changed atomic.Int32
}

func (h *countingHooks) Changed() { h.changed.Add(1); h.Scheduler.Changed() }

func newScheduleEnv(t *testing.T) (*ciEnv, *countingHooks) {
	e := newCIEnv(t, map[string]string{".gitlab-ci.yml": scheduleCI})
	e.git("push", "-q", e.bare, "HEAD:refs/heads/feature")
	h := &countingHooks{Scheduler: schedule.New(e.st, e.engine, e.api.Secrets, nil)}
	e.api.Schedules = h
	return e, h
}

func sobj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not an object: %#v", v)
	}
	return m
}

func jsonEq(t *testing.T, v any, want string) {
	t.Helper()
	if got := fmt.Sprint(v); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestScheduleCreateValidation(t *testing.T) {
	e, h := newScheduleEnv(t)
	base := "/api/v4/projects/group%2Fapp/pipeline_schedules"
	ok := map[string]any{"description": "Nightly", "ref": "feature", "cron": "30 0 * * *", "cron_timezone": "Europe/Berlin"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range ok {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name, role string
		body       any
		code       int
		want       string
	}{
		{"bad cron", "developer", with("cron", "61 * * * *"), 400, `map[message:map[cron:[ is invalid syntax]]]`},
		{"six fields", "developer", with("cron", "0 0 * * * *"), 400, `map[message:map[cron:[ is invalid syntax]]]`},
		{"bad zone", "developer", with("cron_timezone", "Mars/Base"), 400, `map[message:map[cron_timezone:[ is invalid syntax]]]`},
		{"both bad", "developer", with("cron_timezone", "../../etc/passwd"), 400, ""},
		{"missing description", "developer", with("description", nil), 400, `map[error:description is missing]`},
		{"missing cron", "developer", with("cron", nil), 400, `map[error:cron is missing]`},
		{"empty ref", "developer", with("ref", ""), 400, `map[error:ref is empty]`},
		{"10 KB description", "developer", with("description", strings.Repeat("x", 10<<10)), 400, ""},
		{"control characters", "developer", with("description", "a\x00b"), 400, ""},
		{"bad active", "developer", with("active", "maybe"), 400, `map[error:active is invalid]`},
		{"hostile ref", "developer", with("ref", "../../x"), 400, `map[message:map[ref:[is invalid]]]`},
		{"reporter", "reporter", ok, 403, `map[message:403 Forbidden]`},
		{"stranger", "stranger", ok, 404, `map[message:404 Project Not Found]`},
		{"anonymous", "", ok, 401, `map[message:401 Unauthorized]`},
		{"developer on protected main", "developer", with("ref", "main"), 403, `map[message:403 Forbidden]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.do(c.role, "POST", base, c.body)
			if code != c.code {
				t.Fatalf("%d %v, want %d", code, body, c.code)
			}
			if c.want != "" {
				jsonEq(t, body, c.want)
			}
		})
	}
	if code, body := e.do("developer", "POST", base, with("cron", "* * * *")); code != 400 || !strings.Contains(fmt.Sprint(body), "cron") {
		t.Fatalf("%d %v", code, body)
	}
	if n := h.changed.Load(); n != 0 {
		t.Fatalf("refused requests woke the scheduler %d times", n)
	}
	if code, list := e.do("root", "GET", base, nil); code != 200 || len(list.([]any)) != 0 {
		t.Fatalf("refusals created schedules: %v", list)
	}
}

func TestScheduleLifecycle(t *testing.T) {
	e, h := newScheduleEnv(t)
	ctx := context.Background()
	base := "/api/v4/projects/group%2Fapp/pipeline_schedules"
	code, body := e.do("developer", "POST", base, url.Values{"description": {"Nightly"}, "ref": {"feature"}, "cron": {"30 0 * * *"}, "cron_timezone": {"Europe/Berlin"}})
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	sc := sobj(t, body)
	for _, k := range []string{"id", "description", "ref", "cron", "cron_timezone", "next_run_at", "active", "created_at", "updated_at", "owner", "last_pipeline", "variables"} {
		if _, ok := sc[k]; !ok {
			t.Fatalf("missing %s in %v", k, sc)
		}
	}
	if sc["ref"] != "refs/heads/feature" || sc["active"] != true || sobj(t, sc["owner"])["username"] != "developer" || sc["last_pipeline"] != nil ||
		sc["cron_description"] != "At 00:30 every day" || !strings.HasSuffix(sc["next_run_at"].(string), ":30:00.000Z") {
		t.Fatalf("created %v", sc)
	}
	if h.changed.Load() != 1 {
		t.Fatal("create did not wake the scheduler")
	}
	one := fmt.Sprintf("%s/%v", base, sc["id"])

	// Variables, owner only (plus admins).
	if code, body := e.do("developer", "POST", one+"/variables", url.Values{"key": {"MODE"}, "value": {"full"}}); code != 201 {
		t.Fatalf("variable: %d %v", code, body)
	}
	if code, body := e.do("developer", "POST", one+"/variables", url.Values{"key": {"MODE"}, "value": {"x"}}); code != 400 {
		t.Fatalf("duplicate variable: %d %v", code, body)
	}
	if code, _ := e.do("developer", "POST", one+"/variables", url.Values{"key": {"BAD-KEY"}, "value": {"x"}}); code != 400 {
		t.Fatal("bad key accepted")
	}
	if code, _ := e.do("developer", "POST", one+"/variables", url.Values{"key": {"T"}, "value": {"x"}, "variable_type": {"exe"}}); code != 400 {
		t.Fatal("bad variable_type accepted")
	}
	if code, _ := e.do("maintainer", "POST", one+"/variables", url.Values{"key": {"M"}, "value": {"x"}}); code != 403 {
		t.Fatal("a maintainer edited someone else's schedule")
	}
	if code, body := e.do("developer", "PUT", one+"/variables/MODE", url.Values{"value": {"quick"}}); code != 200 || sobj(t, body)["value"] != "quick" {
		t.Fatalf("update variable: %d %v", code, body)
	}
	if code, _ := e.do("developer", "PUT", one+"/variables/NOPE", url.Values{"value": {"x"}}); code != 404 {
		t.Fatal("unknown variable updated")
	}
	e.do("developer", "POST", one+"/variables", url.Values{"key": {"GONE"}, "value": {"bye"}})
	if code, body := e.do("developer", "DELETE", one+"/variables/GONE", nil); code != 202 || sobj(t, body)["value"] != "bye" {
		t.Fatalf("delete variable: %d %v", code, body)
	}
	// Values are sealed at rest.
	stored, _ := e.st.ScheduleVariables(ctx, int64(sc["id"].(float64)))
	if len(stored) != 1 || strings.Contains(stored[0].ValueEnc, "quick") {
		t.Fatalf("stored variables %+v", stored)
	}
	// A reporter reads the schedule but not its variables.
	if code, body := e.do("reporter", "GET", one, nil); code != 200 || sobj(t, body)["variables"] != nil {
		t.Fatalf("reporter view: %d %v", code, body)
	}
	if code, body := e.do("developer", "GET", one, nil); code != 200 || len(sobj(t, body)["variables"].([]any)) != 1 {
		t.Fatalf("owner view: %d %v", code, body)
	}

	// Play creates a schedule pipeline as the caller, with the variables.
	if code, _ := e.do("reporter", "POST", one+"/play", nil); code != 403 {
		t.Fatal("reporter played")
	}
	if code, body := e.do("developer", "POST", one+"/play", nil); code != 201 || fmt.Sprint(body) != "map[message:201 Created]" {
		t.Fatalf("play: %d %v", code, body)
	}
	_, body = e.do("developer", "GET", one, nil)
	last := sobj(t, sobj(t, body)["last_pipeline"])
	if last["source"] != "schedule" || last["ref"] != "feature" || last["status"] == nil || last["sha"] == nil {
		t.Fatalf("last_pipeline %v", last)
	}
	plID := int64(last["id"].(float64))
	jobs, _ := e.st.JobsOfPipeline(ctx, plID)
	if len(jobs) != 1 || jobs[0].Name != "nightly" {
		t.Fatalf("jobs %+v", jobs)
	}
	if pv, _ := e.st.PipelineVariables(ctx, plID); len(pv) != 1 || pv[0].Key != "MODE" {
		t.Fatalf("pipeline variables %+v", pv)
	}
	if code, body := e.do("reporter", "GET", one+"/pipelines", nil); code != 200 || len(body.([]any)) != 1 {
		t.Fatalf("pipelines: %d %v", code, body)
	}
	if code, body := e.do("developer", "GET", one+"/runs", nil); code != 200 || sobj(t, body.([]any)[0])["result"] != "created" {
		t.Fatalf("runs: %d %v", code, body)
	}

	// Edits: the owner may; a maintainer must take ownership first.
	if code, body := e.do("developer", "PUT", one, url.Values{"cron": {"0 6 * * 1-5"}, "active": {"false"}}); code != 200 ||
		sobj(t, body)["active"] != false || sobj(t, body)["cron_description"] != "At 06:00 on Monday through Friday" {
		t.Fatalf("owner edit: %d %v", code, body)
	}
	if code, body := e.do("developer", "PUT", one, url.Values{"cron": {"bogus"}}); code != 400 {
		t.Fatalf("bad edit: %d %v", code, body)
	}
	if code, _ := e.do("maintainer", "PUT", one, url.Values{"description": {"mine"}}); code != 403 {
		t.Fatal("maintainer edited without taking ownership")
	}
	if code, _ := e.do("reporter", "POST", one+"/take_ownership", nil); code != 403 {
		t.Fatal("reporter took ownership")
	}
	if code, body := e.do("maintainer", "POST", one+"/take_ownership", nil); code != 201 || sobj(t, sobj(t, body)["owner"])["username"] != "maintainer" {
		t.Fatalf("take ownership: %d %v", code, body)
	}
	if code, _ := e.do("maintainer", "POST", one+"/take_ownership", nil); code != 200 {
		t.Fatal("second take_ownership is not 200")
	}
	if code, _ := e.do("maintainer", "PUT", one, url.Values{"description": {"mine"}, "active": {"true"}}); code != 200 {
		t.Fatal("new owner cannot edit")
	}
	// Scope filter.
	if _, body := e.do("reporter", "GET", base+"?scope=inactive", nil); len(body.([]any)) != 0 {
		t.Fatalf("inactive scope %v", body)
	}
	if _, body := e.do("reporter", "GET", base+"?scope=active", nil); len(body.([]any)) != 1 {
		t.Fatalf("active scope %v", body)
	}
	if code, _ := e.do("reporter", "GET", base+"?scope=all", nil); code != 400 {
		t.Fatal("bad scope accepted")
	}

	// Unknown ids, other projects' ids, deletion.
	if code, body := e.do("developer", "GET", base+"/99999", nil); code != 404 || fmt.Sprint(body) != "map[message:404 Pipeline Schedule Not Found]" {
		t.Fatalf("unknown: %d %v", code, body)
	}
	if code, _ := e.do("developer", "GET", base+"/abc", nil); code != 400 {
		t.Fatal("non-numeric id")
	}
	if code, _ := e.do("stranger", "GET", one, nil); code != 404 {
		t.Fatal("stranger saw a schedule")
	}
	if code, _ := e.do("developer", "DELETE", one, nil); code != 403 {
		t.Fatal("non-owner developer deleted")
	}
	if code, _ := e.do("maintainer", "DELETE", one, nil); code != 204 {
		t.Fatal("delete failed")
	}
	if code, _ := e.do("maintainer", "GET", one, nil); code != 404 {
		t.Fatal("deleted schedule still there")
	}
	if pl, _ := e.st.PipelineByID(ctx, plID); pl == nil || pl.ScheduleID != 0 {
		t.Fatalf("pipeline after schedule deletion %+v", pl)
	}
	_ = store.Developer
}
