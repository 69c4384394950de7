package e2e

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const deleteCI = `build:
  rules:
    - if: '$HOLD == "1"'
      when: manual
    - when: on_success
  script:
    - echo "SECRET-LOG-MARKER-$CI_PIPELINE_ID"
    - mkdir -p vendor && echo dep > vendor/dep.txt && echo art > out.txt
  artifacts: {paths: [out.txt]}
  cache: {key: deps, paths: [vendor/]}
`

// jobFiles lists the paths under the data dir that belong to job id.
func jobFiles(dataDir, id string) []string {
	var out []string
	for _, p := range []string{filepath.Join(dataDir, "traces", id+".log"), filepath.Join(dataDir, "artifacts", id)} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// archivedJobFiles is jobFiles once the job's log was archived (a
// finished job's log leaves the database for traces/<id>.log shortly
// after the job finished); it waits up to 20 s for both files.
func archivedJobFiles(dataDir, id string) []string {
	deadline := time.Now().Add(20 * time.Second)
	for {
		files := jobFiles(dataDir, id)
		if len(files) == 2 || time.Now().After(deadline) {
			return files
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// projectLeftovers lists paths under the data dir named after a project:
// its repository, caches and built-in runners' work trees.
func projectLeftovers(dataDir, projectPath string) []string {
	var out []string
	suffix := string(filepath.Separator) + filepath.FromSlash(projectPath)
	filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (strings.HasSuffix(p, suffix) || strings.HasSuffix(p, suffix+".git") || strings.HasSuffix(p, suffix+".tmp")) {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func (s *server) runPipeline(t *testing.T, pid string, vars ...string) map[string]any {
	t.Helper()
	body := map[string]any{"ref": "main"}
	var vs []map[string]string
	for i := 0; i+1 < len(vars); i += 2 {
		vs = append(vs, map[string]string{"key": vars[i], "value": vars[i+1]})
	}
	if vs != nil {
		body["variables"] = vs
	}
	var pl map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/pipeline", body, &pl); code != 201 {
		t.Fatalf("create pipeline: %d %v", code, pl)
	}
	return pl
}

func (s *server) waitPipelineID(t *testing.T, pid, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var got map[string]any
	for time.Now().Before(deadline) {
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+id, nil, &got)
		switch got["status"] {
		case "success", "failed", "canceled", "manual":
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pipeline %s did not finish: %v", id, got)
	return nil
}

// TestDeletingRemovesFilesAndRunners (issues #11 and #12): deleting a
// pipeline removes its jobs' logs and artifacts and the API forgets it; the
// next pipeline gets new ids and its job never shows the deleted job's log;
// deleting a project removes its repository, logs, artifacts, caches and
// built-in runners' work trees, and its project runners, which can no
// longer ask for jobs nor attach to a project created afterwards.
func TestDeletingRemovesFilesAndRunners(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "1")
			s.start()
			pid := newCIProject(t, s, "app")
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": deleteCI})
			first := waitPipeline(t, s, pid, "main", 90*time.Second)
			if first["status"] != "success" {
				t.Fatalf("first pipeline: %v", first["status"])
			}
			plID := jsonID(first["id"])
			jobID := jsonID(pipelineJobs(t, s, pid, first)["build"]["id"])
			if !strings.Contains(jobTrace(t, s, pid, jobID), "SECRET-LOG-MARKER-"+plID) {
				t.Fatal("the job's log lacks its marker")
			}
			if len(archivedJobFiles(s.DataDir, jobID)) != 2 {
				t.Fatalf("job %s should have a trace and artifacts on disk: %v", jobID, jobFiles(s.DataDir, jobID))
			}

			repoDir := filepath.Join(s.DataDir, "repositories", "root", "app.git")
			pipeRef := "refs/pipelines/" + plID
			if _, err := gitErr(repoDir, "--git-dir", repoDir, "show-ref", "--verify", pipeRef); err != nil {
				t.Fatalf("the pipeline's ref %s should exist once its job ran: %v", pipeRef, err)
			}

			// Delete the newest pipeline.
			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid+"/pipelines/"+plID, nil, nil); code != 204 {
				t.Fatalf("delete pipeline: %d", code)
			}
			if out, err := gitErr(repoDir, "--git-dir", repoDir, "show-ref", "--verify", pipeRef); err == nil {
				t.Errorf("the deleted pipeline's ref remains in the repository: %s", out)
			}
			// Trigger ids are not reused either.
			var tr1, tr2 map[string]any
			s.call("POST", "/api/v4/projects/"+pid+"/triggers", map[string]any{"description": "one"}, &tr1)
			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid+"/triggers/"+jsonID(tr1["id"]), nil, nil); code != 204 {
				t.Fatalf("delete trigger: %d", code)
			}
			s.call("POST", "/api/v4/projects/"+pid+"/triggers", map[string]any{"description": "two"}, &tr2)
			if jsonID(tr2["id"]) == jsonID(tr1["id"]) {
				t.Errorf("the revoked trigger's id %s was reused", jsonID(tr1["id"]))
			}
			for _, path := range []string{"/pipelines/" + plID, "/jobs/" + jobID, "/jobs/" + jobID + "/trace", "/jobs/" + jobID + "/artifacts"} {
				if code, _ := s.call("GET", "/api/v4/projects/"+pid+path, nil, nil); code != 404 {
					t.Errorf("GET %s after deleting the pipeline: %d, want 404", path, code)
				}
			}
			if left := jobFiles(s.DataDir, jobID); len(left) > 0 {
				t.Errorf("deleted job's files remain: %v", left)
			}
			// The next pipeline (its job held as manual) gets new ids and
			// no stale log.
			second := s.runPipeline(t, pid, "HOLD", "1")
			s.waitPipelineID(t, pid, jsonID(second["id"]))
			if jsonID(second["id"]) == plID {
				t.Errorf("the deleted pipeline's id %s was reused", plID)
			}
			job2 := jsonID(pipelineJobs(t, s, pid, second)["build"]["id"])
			if job2 == jobID {
				t.Errorf("the deleted job's id %s was reused", jobID)
			}
			if tr := jobTrace(t, s, pid, job2); strings.Contains(tr, "SECRET-LOG-MARKER") {
				t.Errorf("a new job serves the deleted job's log:\n%s", tr)
			}

			// A project runner, and one more finished pipeline with files.
			rid, rtok := createRunner(t, s, map[string]any{"runner_type": "project_type", "project_id": pid})
			third := s.waitPipelineID(t, pid, jsonID(s.runPipeline(t, pid)["id"]))
			job3 := jsonID(pipelineJobs(t, s, pid, third)["build"]["id"])
			if len(archivedJobFiles(s.DataDir, job3)) != 2 || len(projectLeftovers(s.DataDir, "root/app")) == 0 {
				t.Fatalf("expected files for the project before deleting it")
			}

			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid, nil, nil); code != 202 {
				t.Fatalf("delete project: %d", code)
			}
			if code, _ := s.call("GET", "/api/v4/runners/"+rid, nil, nil); code != 404 {
				t.Errorf("GET the deleted project's runner: %d, want 404", code)
			}
			if code, _ := s.callAs("", "POST", "/api/v4/jobs/request", map[string]any{"token": rtok}, nil); code != 403 {
				t.Errorf("the deleted project's runner asks for a job: %d, want 403", code)
			}
			if code, _ := s.callAs("", "POST", "/api/v4/runners/verify", map[string]any{"token": rtok}, nil); code != 403 {
				t.Errorf("the deleted project's runner verifies: %d, want 403", code)
			}
			for _, id := range []string{job2, job3} {
				if left := jobFiles(s.DataDir, id); len(left) > 0 {
					t.Errorf("files of job %s remain after deleting the project: %v", id, left)
				}
			}
			if left := projectLeftovers(s.DataDir, "root/app"); len(left) > 0 {
				t.Errorf("the deleted project's repository, caches or work trees remain: %v", left)
			}
			// A project created next gets a new id and none of the old runners.
			var np map[string]any
			if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"next"}, "path": {"next"}}, &np); code != 201 {
				t.Fatalf("create next project: %d %v", code, np)
			}
			if jsonID(np["id"]) == pid {
				t.Errorf("the deleted project's id %s was reused", pid)
			}
			var runners []map[string]any
			s.call("GET", "/api/v4/projects/"+jsonID(np["id"])+"/runners?type=project_type", nil, &runners)
			if len(runners) != 0 {
				t.Errorf("the next project has runners of the deleted one: %v", runners)
			}
			// The path is free again.
			if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}, "path": {"app"}}, nil); code != 201 {
				t.Errorf("re-create root/app: %d", code)
			}
		})
	}
}

// TestDeletedFilesRemovedAfterCrash (issue #12): the server dies after a
// deletion committed but before its files were removed. The deletion and
// its queued removals are in the database; the files are removed at the
// next start, before anything is served. Files of jobs that no longer exist
// at all (left by an older version, which deleted rows only) go too.
func TestDeletedFilesRemovedAfterCrash(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "1")
			s.start()
			pid := newCIProject(t, s, "app")
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": deleteCI})
			p1 := waitPipeline(t, s, pid, "main", 90*time.Second)
			p2 := s.waitPipelineID(t, pid, jsonID(s.runPipeline(t, pid)["id"]))
			j1 := jsonID(pipelineJobs(t, s, pid, p1)["build"]["id"])
			j2 := jsonID(pipelineJobs(t, s, pid, p2)["build"]["id"])
			if len(archivedJobFiles(s.DataDir, j1)) != 2 || len(archivedJobFiles(s.DataDir, j2)) != 2 {
				t.Fatal("expected trace and artifacts for both jobs")
			}
			s.kill()

			// What a committed deletion leaves when the process dies right
			// after the commit: rows gone, removal queued (pipeline 1); and
			// what an older version's deletion left: rows gone, nothing
			// queued (pipeline 2).
			db := openDB(t, s, kind)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`DELETE FROM jobs WHERE pipeline_id IN (?, ?)`, []any{p1["id"], p2["id"]}},
				{`DELETE FROM pipelines WHERE id IN (?, ?)`, []any{p1["id"], p2["id"]}},
			} {
				if _, err := db.Exec(rebindFor(kind, q.sql), q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
			if _, err := db.Exec(rebindFor(kind, `INSERT INTO file_deletions (job_id, created_at) VALUES (?, 0)`), j1); err != nil {
				t.Errorf("queue the removal: %v", err)
			}
			db.Close()

			s.start()
			for _, id := range []string{j1, j2} {
				if left := jobFiles(s.DataDir, id); len(left) > 0 {
					t.Errorf("files of deleted job %s remain after restart: %v", id, left)
				}
				if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/jobs/"+id+"/trace", nil, nil); code != 404 {
					t.Errorf("trace of deleted job %s: %d", id, code)
				}
			}
			db = openDB(t, s, kind)
			defer db.Close()
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM file_deletions`).Scan(&n); err != nil || n != 0 {
				t.Errorf("queued removals after restart: %d %v", n, err)
			}
		})
	}
}
