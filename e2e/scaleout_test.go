package e2e

import (
	"archive/zip"
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/testenv"
)

// scaleOutTriggers is how many pipelines TestScaleOut triggers;
// KILN_SCALEOUT_TRIGGERS raises (or lowers) it.
const scaleOutTriggers = 1000

// scaleOutClients is how many trigger clients run concurrently.
const scaleOutClients = 8

// scaleOutCI is the pipeline every trigger starts: two stages whose jobs
// each append one line to the ledger. Fetches are retried, as they should
// be behind replicas that restart (docs/runners.md): five attempts wait
// 1+2+3+4 s in all, enough for a restart on a busy machine.
const scaleOutCI = `
variables:
  GET_SOURCES_ATTEMPTS: 5
  ARTIFACT_DOWNLOAD_ATTEMPTS: 5
stages: [build, test]
build:
  stage: build
  script:
    - echo "$CI_PIPELINE_ID $CI_JOB_NAME $SCALE_ID" >> "$LEDGER"
test:
  stage: test
  script:
    - echo "$CI_PIPELINE_ID $CI_JOB_NAME $SCALE_ID" >> "$LEDGER"
`

// scaleOutArtifactsCI is scaleOutCI with an artifact: the build job
// writes out/result.txt (its pipeline and trigger id) as artifacts:paths,
// the test job downloads it (dependencies) and checks it before appending
// its ledger line, so that artifacts cross replicas under load.
const scaleOutArtifactsCI = `
variables:
  GET_SOURCES_ATTEMPTS: 5
  ARTIFACT_DOWNLOAD_ATTEMPTS: 5
stages: [build, test]
build:
  stage: build
  script:
    - echo "$CI_PIPELINE_ID $CI_JOB_NAME $SCALE_ID" >> "$LEDGER"
    - mkdir -p out && echo "artifact of $CI_PIPELINE_ID $SCALE_ID" > out/result.txt
  artifacts:
    paths: [out/]
test:
  stage: test
  dependencies: [build]
  script:
    - test "$(cat out/result.txt)" = "artifact of $CI_PIPELINE_ID $SCALE_ID"
    - echo "$CI_PIPELINE_ID $CI_JOB_NAME $SCALE_ID" >> "$LEDGER"
`

// scaleOutCounts is what TestScaleOut measures.
type scaleOutCounts struct {
	Triggers, Accepted, Unknown, UnknownCreated, Refused     int
	LostAnswers, Replayed                                    int
	Lost, Failed, Unfinished, RunTwice, NeverRun, Duplicates int
	WrongTrigger                                             int
	FetchRetries, FetchRetriesUnexplained                    int
	Pipelines, LedgerLines                                   int
	TriggerWall, Wall, ArchiveLag                            time.Duration
}

// scaleOutSetup says what a scale-out run runs on.
type scaleOutSetup struct {
	triggers int    // default count (KILN_SCALEOUT_TRIGGERS overrides)
	ci       string // the pipeline
	// s3 and bucket, when set: replicas with separate data dirs sharing
	// only the repositories dir, the secrets key and this bucket
	// (--object-store s3); else one data dir and the default store.
	s3     *testenv.S3Server
	bucket string
}

// TestScaleOut: two `kiln server` replicas on one PostgreSQL database and
// one data dir, no built-in runners, four external `kiln runner`
// processes (two per replica), and scaleOutTriggers triggers split across
// both replicas by concurrent clients; one replica is killed (SIGKILL) and
// restarted while the triggers arrive, and again when half the pipelines
// have finished. Every job's script appends a line to
// a ledger; at the end nothing accepted may be lost, fail, stay unfinished,
// run twice or never run, and no trigger may create two pipelines.
//
// Every trigger carries an Idempotency-Key (its trigger id). A trigger
// whose request never reached a server (connection refused) is sent again,
// to the other replica; one whose answer was lost (it may or may not have
// created a pipeline) is sent again with the same key, which answers with
// the pipeline the first request created, if it did: no trigger may stay
// unknown.
func TestScaleOut(t *testing.T) {
	scaleOut(t, scaleOutSetup{triggers: scaleOutTriggers, ci: scaleOutCI})
}

// TestScaleOutS3 is TestScaleOut past one machine (issue #18): the two
// replicas have separate data dirs and share only PostgreSQL, the
// repositories (--repositories-dir), the secrets key (the second replica
// reads the first one's with --secrets-key-file) and one S3 bucket
// (--object-store s3, a real SeaweedFS). The build job uploads an
// artifact that the test job downloads and checks, so artifacts cross
// replicas under load while replica b is SIGKILLed twice. At the end every
// log is archived in the bucket, a log and an artifact uploaded by a
// runner of replica A are read through replica B's API, and neither data
// dir holds artifacts or logs. 200 triggers by default
// (KILN_SCALEOUT_TRIGGERS).
func TestScaleOutS3(t *testing.T) {
	s3 := testenv.S3(t)
	scaleOut(t, scaleOutSetup{triggers: 200, ci: scaleOutArtifactsCI, s3: s3, bucket: s3.NewBucket(t)})
}

func scaleOut(t *testing.T, setup scaleOutSetup) {
	n := setup.triggers
	if v := os.Getenv("KILN_SCALEOUT_TRIGGERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			t.Fatalf("KILN_SCALEOUT_TRIGGERS=%q: want a number ≥ 10", v)
		}
	}
	// A job whose assignment answer dies with a replica goes back to the
	// queue after the ack timeout (1 minute by default; shorter here).
	common := []string{"--builtin-runners", "0", "--runner-ack-timeout", "10s"}
	env := []string{"KILN_LOG_LEVEL=info"}
	var a, b *server
	if setup.s3 == nil {
		a = newServer(t, "postgres", common...)
		a.Env = env
		a.start()
		b = &server{t: t, DataDir: a.DataDir, DB: a.DB, Extra: a.Extra, Env: a.Env}
	} else {
		repos := filepath.Join(t.TempDir(), "shared-repositories")
		common = append(append(common, "--repositories-dir", repos), s3Flags(setup.s3, setup.bucket)...)
		env = append(env, s3Env(setup.s3)...)
		a = newServer(t, "postgres", common...)
		a.Env = env
		a.start()
		key := filepath.Join(a.DataDir, "secrets.key")
		b = &server{t: t, DataDir: t.TempDir(), DB: a.DB, Env: env,
			Extra: append(slices.Clone(common), "--secrets-key-file", key)}
	}
	b.addr = freeAddr(t)
	b.URL = "http://" + b.addr
	b.start()
	replicas := []*server{a, b}

	db, err := sql.Open("pgx", a.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	pid := newCIProject(t, a, "app")
	ledger := filepath.Join(t.TempDir(), "ledger")
	if code, _ := a.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "LEDGER", "value": ledger}, nil); code != 201 {
		t.Fatalf("create LEDGER variable: %d", code)
	}
	pushBranch(t, a, "root/app", "main", map[string]string{".gitlab-ci.yml": setup.ci})
	var trig map[string]any
	if code, _ := a.call("POST", "/api/v4/projects/"+pid+"/triggers", map[string]any{"description": "scale-out"}, &trig); code != 201 {
		t.Fatalf("create trigger: %d %v", code, trig)
	}
	trigToken, _ := trig["token"].(string)
	var runners []*runnerProc
	for i := range 4 {
		_, tok := createRunner(t, a, map[string]any{"runner_type": "instance_type", "description": fmt.Sprintf("scale-%d", i), "run_untagged": true})
		runners = append(runners, startRunner(t, replicas[i%2], fmt.Sprintf("scale-%d", i), tok, "--concurrent", "2"))
	}
	// The push's own pipeline runs first (and is not counted).
	pushed := waitPipeline(t, a, pid, "main", 90*time.Second)
	pushID, _ := strconv.ParseInt(jsonID(pushed["id"]), 10, 64)

	// Fire the triggers.
	type result struct {
		pipeline int64
		state    string // accepted, unknown, refused
		detail   string
		// lostAnswers counts sends whose answer was lost (sent again with
		// the same key); replayed: the 201 was a replay of the pipeline
		// an earlier send created (net/http also resends, unseen, a
		// request with an Idempotency-Key when a reused connection breaks).
		lostAnswers int
		replayed    bool
	}
	results := make([]result, n)
	var sent atomic.Int64
	var downMu sync.RWMutex // held for writing while a replica is being killed
	hc := &http.Client{Timeout: 60 * time.Second}
	send := func(i int) result {
		id := fmt.Sprintf("t%05d", i)
		target := i % 2
		lost := 0
		for try := 0; ; try++ {
			form := url.Values{"token": {trigToken}, "ref": {"main"}, "variables[SCALE_ID]": {id}}
			downMu.RLock()
			base := replicas[target].URL
			downMu.RUnlock()
			req, _ := http.NewRequest("POST", base+"/api/v4/projects/"+pid+"/trigger/pipeline", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Idempotency-Key", "scale-"+id)
			resp, err := hc.Do(req)
			if err != nil {
				var op *net.OpError
				if errors.As(err, &op) && op.Op == "dial" && try < 600 {
					// Never reached a server: safe to send again, elsewhere.
					target = 1 - target
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if lost < 20 {
					// The answer was lost: the same key makes sending
					// again safe (a replay if the first one created it).
					lost++
					target = 1 - target
					time.Sleep(100 * time.Millisecond)
					continue
				}
				return result{state: "unknown", detail: err.Error(), lostAnswers: lost}
			}
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != 201 {
				return result{state: "refused", detail: fmt.Sprintf("%d %s", resp.StatusCode, raw), lostAnswers: lost}
			}
			var out struct {
				ID int64 `json:"id"`
			}
			if json.Unmarshal(raw, &out); out.ID == 0 {
				return result{state: "unknown", detail: "201 without id: " + string(raw), lostAnswers: lost}
			}
			return result{state: "accepted", pipeline: out.ID, lostAnswers: lost, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
		}
	}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range scaleOutClients {
		wg.Go(func() {
			for i := range next {
				results[i] = send(i)
				sent.Add(1)
			}
		})
	}
	killAt := int64(n / 3)
	killed := false
	var outages [][2]time.Time // when replica b was down
	for i := range n {
		next <- i
		if !killed && sent.Load() >= killAt {
			killed = true
			// SIGKILL replica b mid-load; its runners and clients see it
			// vanish, then it comes back on the same address.
			down := time.Now()
			b.kill()
			t.Logf("replica b killed after %d of %d triggers (%s)", sent.Load(), n, time.Since(start).Round(time.Millisecond))
			time.Sleep(500 * time.Millisecond)
			b.start()
			outages = append(outages, [2]time.Time{down, time.Now()})
			t.Logf("replica b back after %s", time.Since(start).Round(time.Millisecond))
		}
	}
	close(next)
	wg.Wait()
	triggerWall := time.Since(start)

	// Wait for every pipeline to finish; when half are done, kill replica
	// b again, now that only runners talk to it (jobs mid-fetch, mid-log,
	// reporting their end).
	// A pipeline is unfinished when nothing has finished for a minute (a
	// busy machine is slow, a stuck job makes no progress at all), or
	// after a hard limit.
	const stall = time.Minute
	hardLimit := time.Now().Add(10 * time.Minute)
	finalStatus := "('success','failed','canceled','skipped')"
	killedAgain := false
	lastOpen, lastProgress := -1, time.Now()
	for {
		var open, all int
		if err := db.QueryRow(`SELECT count(*) FILTER (WHERE status NOT IN `+finalStatus+`), count(*) FROM pipelines`).Scan(&open, &all); err != nil {
			t.Fatal(err)
		}
		if open != lastOpen {
			lastOpen, lastProgress = open, time.Now()
		}
		if open == 0 || time.Since(lastProgress) > stall || time.Now().After(hardLimit) {
			break
		}
		if !killedAgain && open <= all/2 {
			killedAgain = true
			down := time.Now()
			b.kill()
			t.Logf("replica b killed again with %d of %d pipelines open (%s)", open, all, time.Since(start).Round(time.Millisecond))
			time.Sleep(500 * time.Millisecond)
			b.start()
			outages = append(outages, [2]time.Time{down, time.Now()})
			t.Logf("replica b back after %s", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	wall := time.Since(start)

	// Every finished job's log is archived (the trace-archiver, kicked by
	// each job's end, on whichever replica).
	archiveStart := time.Now()
	for {
		var live int
		if err := db.QueryRow(`SELECT count(*) FROM job_traces WHERE archived_at IS NULL`).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live == 0 {
			break
		}
		if time.Since(archiveStart) > 90*time.Second {
			t.Errorf("%d job logs not archived 90 s after the last pipeline ended", live)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Count.
	c := scaleOutCounts{Triggers: n, TriggerWall: triggerWall, Wall: wall, ArchiveLag: time.Since(archiveStart)}
	byTrigger := map[int64]string{} // accepted pipeline → trigger id
	unknownIDs := map[string]bool{}
	var refused []string
	for i, r := range results {
		id := fmt.Sprintf("t%05d", i)
		c.LostAnswers += r.lostAnswers
		if r.replayed {
			c.Replayed++
		}
		switch r.state {
		case "accepted":
			c.Accepted++
			byTrigger[r.pipeline] = id
		case "unknown":
			c.Unknown++
			unknownIDs[id] = true
		default:
			c.Refused++
			refused = append(refused, id+": "+r.detail)
		}
	}
	status := map[int64]string{}
	rows, err := db.Query(`SELECT id, status FROM pipelines ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var st string
		rows.Scan(&id, &st)
		status[id] = st
	}
	rows.Close()
	// Ledger: one line per script run.
	runs := map[[2]string]int{}
	triggerPipelines := map[string]map[int64]bool{}
	if f, err := os.Open(ledger); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 2 && fields[0] == strconv.FormatInt(pushID, 10) {
				continue // the push's pipeline has no trigger id
			}
			if len(fields) != 3 {
				t.Errorf("malformed ledger line %q", sc.Text())
				continue
			}
			c.LedgerLines++
			runs[[2]string{fields[0], fields[1]}]++
			pl, _ := strconv.ParseInt(fields[0], 10, 64)
			if triggerPipelines[fields[2]] == nil {
				triggerPipelines[fields[2]] = map[int64]bool{}
			}
			triggerPipelines[fields[2]][pl] = true
			if want, ok := byTrigger[pl]; ok && want != fields[2] {
				c.WrongTrigger++
				t.Errorf("pipeline %d was accepted for trigger %s but its job ran for %s", pl, want, fields[2])
			}
		}
		f.Close()
	}
	for pl := range byTrigger {
		if _, ok := status[pl]; !ok {
			c.Lost++
			t.Errorf("pipeline %d was accepted (201) but is not in the database", pl)
		}
	}
	var bad []string
	for id, st := range status {
		if id == pushID {
			continue
		}
		c.Pipelines++
		switch st {
		case "success":
		case "failed", "canceled", "skipped":
			c.Failed++
			bad = append(bad, fmt.Sprintf("%d:%s", id, st))
		default:
			c.Unfinished++
			bad = append(bad, fmt.Sprintf("%d:%s", id, st))
		}
		for _, job := range []string{"build", "test"} {
			k := [2]string{strconv.FormatInt(id, 10), job}
			switch runs[k] {
			case 0:
				c.NeverRun++
			case 1:
			default:
				c.RunTwice++
				t.Errorf("pipeline %d job %s ran %d times", id, job, runs[k])
			}
		}
	}
	for id, pls := range triggerPipelines {
		if len(pls) > 1 {
			c.Duplicates++
			t.Errorf("trigger %s created pipelines %v", id, pls)
		}
		if unknownIDs[id] {
			c.UnknownCreated++
		}
	}
	// Fetches retried (GET_SOURCES_ATTEMPTS) are fine around an outage of
	// replica b; anywhere else they are a bug (e.g. a ref listed wrongly).
	c.FetchRetries, c.FetchRetriesUnexplained = scanFetchRetries(t, scaleOutLogs(t, setup, a), outages)
	sort.Strings(bad)
	if len(bad) > 20 {
		bad = append(bad[:20], "…")
	}
	t.Logf("scale-out (%d CPUs): %+v", runtime.NumCPU(), c)
	t.Logf("triggers %d: accepted %d (answers lost and sent again with the key %d, replays %d), unknown %d (of which created %d), refused %d; pipelines lost %d, failed %d, unfinished %d; scripts run twice %d, never run %d; duplicate pipelines %d; fetches retried %d (%d away from an outage); wall %s (triggers sent in %s), all logs archived %s later",
		c.Triggers, c.Accepted, c.LostAnswers, c.Replayed, c.Unknown, c.UnknownCreated, c.Refused, c.Lost, c.Failed, c.Unfinished, c.RunTwice, c.NeverRun, c.Duplicates,
		c.FetchRetries, c.FetchRetriesUnexplained,
		c.Wall.Round(time.Millisecond), c.TriggerWall.Round(time.Millisecond), c.ArchiveLag.Round(time.Millisecond))
	if c.Refused > 0 {
		t.Errorf("refused triggers: %v", refused[:min(len(refused), 10)])
	}
	if c.Failed+c.Unfinished > 0 {
		t.Errorf("pipelines not successful: %v", bad)
		for _, x := range bad[:min(len(bad), 3)] {
			id, _, _ := strings.Cut(x, ":")
			var jobs []map[string]any
			a.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+id+"/jobs", nil, &jobs)
			for _, j := range jobs {
				t.Logf("pipeline %s job %v: %v %v\n%s", id, j["name"], j["status"], j["failure_reason"], jobTrace(t, a, pid, jsonID(j["id"])))
				// What the runners and servers said about the job.
				mark := "job=" + jsonID(j["id"]) + " "
				for ri, rp := range runners {
					for _, line := range strings.Split(rp.log.String(), "\n") {
						if strings.Contains(line+" ", mark) {
							t.Logf("runner %d: %s", ri, line)
						}
					}
				}
				for si, sv := range replicas {
					for _, line := range strings.Split(sv.Log(), "\n") {
						if strings.Contains(line+" ", mark) {
							t.Logf("server %d: %s", si, line)
						}
					}
				}
			}
		}
	}
	if c.FetchRetriesUnexplained > 0 {
		t.Errorf("%d jobs had to fetch again although no replica was down", c.FetchRetriesUnexplained)
	}
	if c.NeverRun > 0 {
		t.Errorf("%d jobs never ran", c.NeverRun)
	}
	if c.Accepted == 0 || c.Accepted+c.Unknown+c.Refused != n {
		t.Errorf("counts do not add up: %+v", c)
	}
	if c.Unknown > 0 {
		t.Errorf("%d triggers stayed unknown although they carry an Idempotency-Key", c.Unknown)
	}
	if setup.s3 != nil {
		scaleOutAcrossReplicas(t, setup, a, b, pid, runners)
	}
}

// scaleOutLogs returns the finished job logs by name: the objects
// traces/<id>.log of the bucket, or the files of the shared data dir.
func scaleOutLogs(t *testing.T, setup scaleOutSetup, a *server) map[string]string {
	out := map[string]string{}
	if setup.s3 != nil {
		for _, name := range setup.s3.ObjectNames(t, setup.bucket, "traces/") {
			out[name] = string(bucketObject(t, setup.s3, setup.bucket, name))
		}
		return out
	}
	dir := filepath.Join(a.DataDir, "traces")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("reading traces: %v", err)
		return nil
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out[e.Name()] = string(b)
		}
	}
	return out
}

// scaleOutAcrossReplicas checks, after a TestScaleOutS3 run, that a job
// run by a runner of replica A (whose log and artifact went through A)
// has both read through replica B's API, as they are in the bucket, and
// that neither data dir holds artifacts or logs.
func scaleOutAcrossReplicas(t *testing.T, setup scaleOutSetup, a, b *server, pid string, runners []*runnerProc) {
	// Runners 0 and 2 talk to replica A, which is never killed.
	var jobs []map[string]any
	var job map[string]any
	for page := 1; job == nil && page <= 20; page++ {
		if code, _ := b.call("GET", fmt.Sprintf("/api/v4/projects/%s/jobs?scope=success&per_page=100&page=%d", pid, page), nil, &jobs); code != 200 || len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			r, _ := j["runner"].(map[string]any)
			if j["name"] == "build" && r != nil && (r["description"] == "scale-0" || r["description"] == "scale-2") {
				job = j
				break
			}
		}
	}
	if job == nil {
		t.Fatal("no successful build job run by a runner of replica A")
	}
	jid := jsonID(job["id"])
	// Its log went to A (trace chunks), was archived by whichever replica
	// ran the archiver; B serves it from the object.
	stored := string(bucketObject(t, setup.s3, setup.bucket, "traces/"+jid+".log"))
	if tr := jobTrace(t, b, pid, jid); tr != stored || !strings.Contains(tr, "Uploading artifacts as \"archive\" to coordinator... 201 Created") {
		t.Errorf("job %s's log through B (%d bytes) is not the archived one (%d bytes) or lacks the upload:\n%.2000s", jid, len(tr), len(stored), tr)
	}
	// Its artifact went to A (the runner's upload); B streams it from the
	// bucket and it holds what the job wrote.
	resp, body := getArtifacts(t, b, "/api/v4/projects/"+pid+"/jobs/"+jid+"/artifacts")
	if resp.StatusCode != 200 {
		t.Fatalf("artifact of job %s through B: %d %.300s", jid, resp.StatusCode, body)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("artifact of job %s through B is not a zip: %v", jid, err)
	}
	var content string
	for _, f := range zr.File {
		if f.Name == "out/result.txt" {
			rc, _ := f.Open()
			data, _ := io.ReadAll(rc)
			rc.Close()
			content = string(data)
		}
	}
	pl, _ := job["pipeline"].(map[string]any)
	if !strings.HasPrefix(content, "artifact of "+jsonID(pl["id"])+" t") {
		t.Errorf("artifact of job %s through B: out/result.txt = %q", jid, content)
	}
	t.Logf("job %s (runner %v, through replica A): log (%d bytes) and artifact (%d bytes) read through replica B", jid, job["runner"].(map[string]any)["description"], len(stored), len(body))
	// Nothing in either data dir.
	for _, s := range []*server{a, b} {
		for _, sub := range []string{"artifacts", "traces"} {
			var files []string
			filepath.WalkDir(filepath.Join(s.DataDir, sub), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if len(files) > 0 {
				t.Errorf("%d files under %s although the object store is S3: %q", len(files), filepath.Join(s.DataDir, sub), files[:min(len(files), 5)])
			}
		}
	}
	var artifacts int
	for _, name := range setup.s3.ObjectNames(t, setup.bucket, "artifacts/") {
		if strings.HasSuffix(name, "/artifacts.zip") {
			artifacts++
		}
	}
	t.Logf("bucket: %d artifacts archives, %d logs", artifacts, len(setup.s3.ObjectNames(t, setup.bucket, "traces/")))
}

// scanFetchRetries counts job logs with a retried get_sources stage, and
// those whose first fetch started away from every outage (10 s before one
// began to 5 s after it ended).
func scanFetchRetries(t *testing.T, logs map[string]string, outages [][2]time.Time) (retries, unexplained int) {
	names := slices.Sorted(maps.Keys(logs))
	for _, name := range names {
		tr := logs[name]
		if !strings.Contains(tr, "WARNING: get_sources failed") {
			continue
		}
		retries++
		i := strings.Index(tr, ":get_sources\r")
		j := strings.LastIndex(tr[:max(i, 0)], "section_start:")
		ts, err := strconv.ParseInt(tr[j+len("section_start:"):max(i, j)], 10, 64)
		if i < 0 || j < 0 || err != nil {
			unexplained++
			continue
		}
		at := time.Unix(ts, 0)
		explained := false
		for _, o := range outages {
			if !at.Before(o[0].Add(-10*time.Second)) && !at.After(o[1].Add(5*time.Second)) {
				explained = true
			}
		}
		if !explained {
			unexplained++
			t.Logf("job log %s: a fetch failed at %s, away from any outage %v:\n%s", name, at.Format(time.TimeOnly), outages, tr)
		}
	}
	return retries, unexplained
}
