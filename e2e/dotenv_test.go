package e2e

import (
	"strings"
	"testing"
	"time"
)

const dotenvPassCI = `stages: [build, test, deploy]
a:
  stage: build
  script:
    - echo "BUILD_VERSION=1.2.3" > build.env
    - echo "OVERRIDE=from-dotenv" >> build.env
    - echo "PROJ_VAR=from-dotenv" >> build.env
  artifacts:
    reports:
      dotenv: build.env
bad:
  stage: build
  allow_failure: true
  script:
    - echo "LEAKED=yes" > bad.env
    - echo "MY-KEY=1" >> bad.env
  artifacts:
    reports:
      dotenv: bad.env
b:
  stage: test
  variables:
    OVERRIDE: from-yaml
  script:
    - echo "B version=[$BUILD_VERSION] override=[$OVERRIDE] proj=[$PROJ_VAR] leaked=[$LEAKED]"
c:
  stage: test
  dependencies: []
  script:
    - echo "C version=[$BUILD_VERSION]"
d:
  stage: test
  needs: [{job: a, artifacts: false}]
  script:
    - echo "D version=[$BUILD_VERSION]"
e:
  stage: test
  needs: [a]
  script:
    - echo "E version=[$BUILD_VERSION]"
child:
  stage: deploy
  variables:
    PASSED_VERSION: v$BUILD_VERSION
    SHADOWED: x$PROJ_VAR
  trigger:
    include: child.yml
    strategy: depend
`

const dotenvChildCI = `show:
  script:
    - echo "child passed=[$PASSED_VERSION] direct=[$BUILD_VERSION]"
inherit:
  needs:
    - pipeline: $PARENT_PIPELINE_ID
      job: a
  script:
    - echo "inherit version=[$BUILD_VERSION] override=[$OVERRIDE]"
`

func firstPipeline(l []map[string]any) map[string]any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// TestDotenvVariablesPassToLaterJobs: a job's artifacts:reports:dotenv
// becomes variables of the later jobs that take its artifacts, through the
// job payload of a real external `kiln runner`: the next stage gets them
// (above its YAML variables, below project variables), dependencies: []
// and needs with artifacts: false do not; a bridge's variables can use
// them, and so does a child job through needs:pipeline:
// $PARENT_PIPELINE_ID; a report GitLab would refuse fails its job and
// passes nothing.
func TestDotenvVariablesPassToLaterJobs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "dotenv")
			_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "ext", "run_untagged": true})
			startRunner(t, s, "ext", tok)
			if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "PROJ_VAR", "value": "from-project"}, nil); code != 201 {
				t.Fatalf("create project variable: %d", code)
			}
			pushBranch(t, s, "root/dotenv", "main", map[string]string{".gitlab-ci.yml": dotenvPassCI, "child.yml": dotenvChildCI})
			var pl map[string]any
			if !trigWaitFor(30*time.Second, func() bool { ps := s.trigPipelinesOf(pid, "source=push"); pl = firstPipeline(ps); return pl != nil }) {
				t.Fatalf("no push pipeline")
			}
			s.trigWaitPipeline(pid, pl["id"], 120*time.Second)
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pl["id"]), nil, &pl)
			jobs := pipelineJobs(t, s, pid, pl)
			trace := func(name string) string { return jobTrace(t, s, pid, jsonID(jobs[name]["id"])) }
			if pl["status"] != "success" {
				for n, j := range jobs {
					t.Logf("%s: %v %v\n%s", n, j["status"], j["failure_reason"], trace(n))
				}
				t.Fatalf("pipeline: %v", pl["status"])
			}
			for name, want := range map[string]string{
				"b": "B version=[1.2.3] override=[from-dotenv] proj=[from-project] leaked=[]",
				"c": "C version=[]",
				"d": "D version=[]",
				"e": "E version=[1.2.3]",
			} {
				if tr := trace(name); !strings.Contains(tr, want) {
					t.Errorf("job %s: want %q in its log:\n%s", name, want, tr)
				}
			}
			if st := jobs["bad"]["status"]; st != "failed" {
				t.Errorf("job with a refused dotenv report: %v, want failed", st)
			}
			children := s.trigPipelinesOf(pid, "source=parent_pipeline")
			if len(children) != 1 {
				t.Fatalf("child pipelines: %v", children)
			}
			// PROJ_VAR is both a dotenv name and a project variable: the
			// bridge does not expand it (the project's value would leave
			// in a pipeline variable, to another project's pipeline with
			// a multi-project trigger); downstream jobs expand it from
			// their own project's variables.
			var cvars []map[string]any
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(children[0]["id"])+"/variables", nil, &cvars)
			got := map[string]any{}
			for _, v := range cvars {
				got[v["key"].(string)] = v["value"]
			}
			if got["SHADOWED"] != "x$PROJ_VAR" || got["PASSED_VERSION"] != "v1.2.3" {
				t.Errorf("child pipeline variables: %v, want SHADOWED=x$PROJ_VAR (not expanded) and PASSED_VERSION=v1.2.3", got)
			}
			cj := pipelineJobs(t, s, pid, children[0])
			if tr := jobTrace(t, s, pid, jsonID(cj["show"]["id"])); !strings.Contains(tr, "child passed=[v1.2.3] direct=[]") {
				t.Errorf("child job: want the bridge's expanded variable:\n%s", tr)
			}
			if tr := jobTrace(t, s, pid, jsonID(cj["inherit"]["id"])); !strings.Contains(tr, "inherit version=[1.2.3] override=[from-dotenv]") {
				t.Errorf("child job with needs:pipeline: want the parent job's dotenv variables:\n%s", tr)
			}
		})
	}
}
