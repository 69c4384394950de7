package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/testenv"
)

// liveLogCI prints a 300 KB block (three 128 KiB chunks), then a line
// every 50 ms until the test creates $STOP.
const liveLogCI = `
build:
  script:
    - 'i=0; while [ $i -lt 3000 ]; do echo "block line $i .........................................................................................."; i=$((i+1)); done'
    - 'i=0; while [ ! -e "$STOP" ] && [ $i -lt 1200 ]; do echo "live line $i"; i=$((i+1)); sleep 0.05; done'
    - echo "job is done"
`

// TestLiveLogsAcrossReplicas: two `kiln server` replicas on one PostgreSQL
// database with separate data dirs (sharing the repositories directory and
// the secrets key, as docs/operations.md says replicas must); an external `kiln runner` sends its job
// log to replica A while a client reads it through replica B — the API's
// GET /projects/:id/jobs/:job_id/trace, the job page's trace.json (followed
// by offset, as the page's script does) and the raw log — during the run;
// no log file exists in either data dir while the job runs (the log is
// chunks in the database). Once the job finished, the log is archived
// (chunks gone, one object traces/<id>.log) and still reads whole.
//
// With the default object store (each replica's own data dir) the
// finished log is read through A, which archived it into its data dir;
// TestLiveLogsAcrossReplicasS3 shares a bucket and reads it through B.
func TestLiveLogsAcrossReplicas(t *testing.T) {
	liveLogsAcrossReplicas(t, nil, nil, nil)
}

// TestLiveLogsAcrossReplicasS3 is TestLiveLogsAcrossReplicas with both
// replicas on one S3 bucket (--object-store s3): replica B, which neither
// received the log nor archived it, serves the finished log from the
// object A archived, and no log file exists in either data dir.
func TestLiveLogsAcrossReplicasS3(t *testing.T) {
	s3 := testenv.S3(t)
	bucket := s3.NewBucket(t)
	liveLogsAcrossReplicas(t, s3Flags(s3, bucket), s3Env(s3), func(t *testing.T, jid string) []byte {
		return bucketObject(t, s3, bucket, "traces/"+jid+".log")
	})
}

// liveLogsAcrossReplicas runs the two-replica live log scenario; with
// object (the archived log as stored, S3), replica B reads the finished
// log, else A does.
func liveLogsAcrossReplicas(t *testing.T, extra, env []string, object func(t *testing.T, jid string) []byte) {
	// The replicas share the database, the repositories (--repositories-dir)
	// and the secrets key; their data dirs are their own.
	repos := filepath.Join(t.TempDir(), "shared-repositories")
	a := newServer(t, "postgres", append([]string{"--builtin-runners", "0", "--repositories-dir", repos}, extra...)...)
	a.Env = env
	a.start()
	key := filepath.Join(a.DataDir, "secrets.key")
	b := &server{t: t, DataDir: t.TempDir(), DB: a.DB, Env: env, Extra: append([]string{"--builtin-runners", "0", "--repositories-dir", repos, "--secrets-key-file", key}, extra...)}
	b.addr = freeAddr(t)
	b.URL = "http://" + b.addr
	b.start()

	pid := newCIProject(t, a, "app")
	stop := filepath.Join(t.TempDir(), "stop")
	if code, _ := a.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "STOP", "value": stop}, nil); code != 201 {
		t.Fatalf("create STOP variable: %d", code)
	}
	_, tok := createRunner(t, a, map[string]any{"runner_type": "instance_type", "description": "live", "run_untagged": true})
	startRunner(t, a, "live", tok)
	pushBranch(t, a, "root/app", "main", map[string]string{".gitlab-ci.yml": liveLogCI})

	// Everything below reads through replica B.
	j := waitJob(t, b, pid, "main", "build", 60*time.Second, "running")
	jid := jsonID(j["id"])
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(jobTrace(t, b, pid, jid), "live line 3\n") {
		if time.Now().After(deadline) {
			t.Fatalf("replica B never showed the live log:\n%.2000s", jobTrace(t, b, pid, jid))
		}
		time.Sleep(100 * time.Millisecond)
	}
	live := jobTrace(t, b, pid, jid)
	if !strings.Contains(live, "block line 0 ") || !strings.Contains(live, "block line 2999 ") || strings.Contains(live, "job is done") {
		t.Fatalf("live log through B is not the running job's (%d bytes)", len(live))
	}
	// The job page's log endpoint on B, followed from offset 0 like the
	// page's script: it keeps up with the running job.
	web := b.webSession(t, "root", "rootpassword1")
	base := b.URL + "/root/app/-/jobs/" + jid
	var off int64
	var shown strings.Builder
	for !strings.Contains(shown.String(), "live line 20") {
		if time.Now().After(deadline) {
			t.Fatalf("trace.json on B did not follow the live log (offset %d)", off)
		}
		var tr struct {
			Offset, Size int64
			Active       bool
			Events       json.RawMessage
		}
		getJSON(t, web, fmt.Sprintf("%s/trace.json?offset=%d", base, off), &tr)
		if tr.Offset < off || tr.Size < tr.Offset {
			t.Fatalf("trace.json offsets went wrong: from %d to %d of %d", off, tr.Offset, tr.Size)
		}
		if !tr.Active {
			t.Fatal("job finished before the test let it")
		}
		off = tr.Offset
		shown.Write(tr.Events)
		time.Sleep(100 * time.Millisecond)
	}
	if raw := getText(t, web, base+"/raw"); !strings.Contains(raw, "live line 20") {
		t.Fatalf("raw log on B: %d bytes without the live lines", len(raw))
	}
	// Nothing came from files: neither replica has one for the running job.
	for _, s := range []*server{a, b} {
		if _, err := os.Stat(filepath.Join(s.DataDir, "traces", jid+".log")); err == nil {
			t.Fatalf("a log file in %s while the job runs", s.DataDir)
		}
	}

	// Finish the job; its log is archived.
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitJob(t, b, pid, "main", "build", 60*time.Second, "success")
	db, err := sql.Open("pgx", a.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for {
		var chunks int
		var archived sql.NullInt64
		db.QueryRow(`SELECT COUNT(*) FROM trace_chunks WHERE job_id = $1`, jid).Scan(&chunks)
		db.QueryRow(`SELECT archived_at FROM job_traces WHERE job_id = $1`, jid).Scan(&archived)
		if chunks == 0 && archived.Valid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log not archived: %d chunks, archived %v", chunks, archived.Valid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reader := a
	if object != nil {
		reader = b
	}
	full := jobTrace(t, reader, pid, jid)
	if !strings.HasPrefix(full, live[:1000]) || !strings.Contains(full, "job is done") || !strings.Contains(full, "block line 2999 ") {
		t.Fatalf("finished log (%d bytes) is not the job's:\n%.500s", len(full), full)
	}
	if object == nil {
		// The default object store is the archiving replica's data dir.
		if _, err := os.Stat(filepath.Join(a.DataDir, "traces", jid+".log")); err != nil {
			t.Fatalf("archived object: %v", err)
		}
		return
	}
	if got := object(t, jid); string(got) != full {
		t.Fatalf("archived object (%d bytes) differs from the log B serves (%d bytes)", len(got), len(full))
	}
	for _, s := range []*server{a, b} {
		if _, err := os.Stat(filepath.Join(s.DataDir, "traces", jid+".log")); err == nil {
			t.Fatalf("a log file in %s although the object store is S3", s.DataDir)
		}
	}
	// The job page's raw log and its log endpoint on B, from the object.
	if raw := getText(t, web, base+"/raw"); raw != full {
		t.Fatalf("raw log on B (%d bytes) differs from the API's (%d bytes)", len(raw), len(full))
	}
	var tr struct {
		Offset, Size int64
		Active       bool
	}
	getJSON(t, web, base+"/trace.json?offset=0", &tr)
	if tr.Active || tr.Size != int64(len(full)) || tr.Offset == 0 {
		t.Fatalf("trace.json on B after archiving: %+v, want size %d", tr, len(full))
	}
}

func getJSON(t *testing.T, c *http.Client, u string, out any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %.300s", u, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func getText(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %.300s", u, resp.StatusCode, b)
	}
	return string(b)
}
