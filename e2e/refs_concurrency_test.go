package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentTriggersExternalRunnersFetchRefs: external runners fetch
// each job's refs/pipelines/N over smart HTTP (ls-refs answered in
// process) while concurrent triggers keep creating new pipeline refs. No
// job may fail because its ref was missing from the listing ("couldn't find
// remote ref"), which 13-16 of 301 pipelines did when the listing dropped
// refs/pipelines/ whenever another ref's lock file was renamed mid-listing.
func TestConcurrentTriggersExternalRunnersFetchRefs(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	pid := newCIProject(t, s, "app")
	for i := range 4 {
		_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": fmt.Sprintf("ext-%d", i), "run_untagged": true})
		startRunner(t, s, fmt.Sprintf("ext-%d", i), tok)
	}
	pushBranch(t, s, "root/app", "main", map[string]string{
		".gitlab-ci.yml": "job:\n  script:\n    - test -f README.md\n",
		"README.md":      "hello\n",
	})
	var tr map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/triggers", url.Values{"description": {"load"}}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	token, _ := tr["token"].(string)

	const total, clients = 200, 8
	var (
		mu  sync.Mutex
		ids []string
		bad []string
		wg  sync.WaitGroup
	)
	next := make(chan int)
	for range clients {
		wg.Go(func() {
			for range next {
				resp, err := http.PostForm(s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", url.Values{"token": {token}, "ref": {"main"}})
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var pl map[string]any
				_ = json.Unmarshal(body, &pl)
				mu.Lock()
				if resp.StatusCode != 201 {
					bad = append(bad, fmt.Sprintf("%d %s", resp.StatusCode, body))
				} else {
					ids = append(ids, jsonID(pl["id"]))
				}
				mu.Unlock()
			}
		})
	}
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d triggers refused, e.g. %s", len(bad), bad[0])
	}

	deadline := time.Now().Add(4 * time.Minute)
	var failed []string
	for _, id := range ids {
		st := s.trigWaitPipeline(pid, id, time.Until(deadline))
		if st != "success" {
			failed = append(failed, id+":"+st)
		}
	}
	if len(failed) > 0 {
		refMissing := 0
		for _, f := range failed {
			id, _, _ := strings.Cut(f, ":")
			var jobs []map[string]any
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+id+"/jobs", nil, &jobs)
			for _, j := range jobs {
				if tr := jobTrace(t, s, pid, jsonID(j["id"])); strings.Contains(tr, "couldn't find remote ref") {
					refMissing++
				} else if j["status"] == "failed" {
					t.Logf("job %v failed:\n%s", j["id"], tr)
				}
			}
		}
		t.Fatalf("%d of %d pipelines did not succeed (%d jobs could not find their ref): %v", len(failed), total, refMissing, failed)
	}
	if strings.Contains(s.Log(), "ref file is empty") {
		t.Errorf("server logged a ref read failure:\n%s", s.Log())
	}
}
