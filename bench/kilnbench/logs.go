package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// rssOf reads a process's resident set size in KiB.
func rssOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var n int
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &n); err == nil {
			return n
		}
	}
	return 0
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// logs is scenario 6: one job prints mb megabytes; an external runner
// process (`kiln runner run --output-limit`) streams it to the server,
// whose --max-trace-size is raised to hold it. Meanwhile a browser-like
// client loads the job page, follows the live log as the page's script
// does, and reads the job over the API.
func logs(bin, work, db, dsn string, mb int) {
	logsRun(bin, work, db, dsn, mb, false)
	logsRun(bin, work, db, freshIf(db, strings.SplitN(dsn, "&search_path", 2)[0]), mb, true)
}

// logsRun runs the job on an external runner process, or with builtin on
// the server's built-in runner (whose log limit is --max-trace-size, and
// whose memory is the server's).
func logsRun(bin, work, db, dsn string, mb int, builtin bool) {
	size := int64(mb) * 1000 * 1000
	where := "external runner process"
	if builtin {
		where = "built-in runner"
	}
	fmt.Printf("\n## Scenario 6: log streaming (%s, one job printing %d MB, %s)\n\n", db, mb, where)
	debug := freePort()
	limit := size + 64<<20
	nb := "0"
	if builtin {
		nb = "1"
	}
	k, err := startKiln(bin, work, dsn, "--builtin-runners", nb, "--max-trace-size", strconv.FormatInt(limit, 10), "--debug-listen", debug)
	check(err)
	defer k.stop()
	runnerPid := k.cmd.Process.Pid
	if !builtin {
		runnerPid = startLogRunner(bin, work, k, limit)
		defer syscall.Kill(-runnerPid, syscall.SIGKILL)
	}

	ci := fmt.Sprintf(`big:
  variables: {GIT_STRATEGY: none}
  script:
    - yes 'kiln log streaming benchmark, a line of ordinary build output, about eighty bytes' | head -c %d || true
`, size)
	pid, err := k.project(work, "logs", ci)

	check(err)
	tok, err := k.triggerToken(pid)
	check(err)
	ui, err := uiSession(k)
	check(err)
	time.Sleep(500 * time.Millisecond)
	rss0 := k.rssKiB()

	profiled := make(chan struct{})
	if profileTo != "" {
		go func() {
			saveProfile(debug, 4*time.Second, profileTo+".logs-"+map[bool]string{false: "external", true: "builtin"}[builtin]+"."+db)
			close(profiled)
		}()
	} else {
		close(profiled)
	}
	code, plID, err := k.trigger(pid, tok)
	if err != nil || code != 201 {
		check(fmt.Errorf("trigger: %d %v", code, err))
	}
	var jobID int64
	for deadline := time.Now().Add(30 * time.Second); jobID == 0 && time.Now().Before(deadline); {
		var jobs []jobJSON
		k.api("GET", fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs", pid, plID), nil, &jobs)
		if len(jobs) > 0 {
			jobID = jobs[0].ID
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if jobID == 0 {
		check(fmt.Errorf("no job"))
	}
	jobURL := fmt.Sprintf("/root/logs/-/jobs/%d", jobID)
	// The stored log's size: live logs are chunks in the database, so ask
	// the job page's log endpoint (an offset past the end reads nothing).
	traceSize := func() (int64, bool) {
		resp, err := ui.Get(fmt.Sprintf("%s%s/trace.json?offset=%d", k.URL, jobURL, int64(1)<<60))
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		var t struct{ Size int64 }
		if json.NewDecoder(resp.Body).Decode(&t) != nil {
			return 0, false
		}
		return t.Size, true
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	probes := map[string][]time.Duration{}
	record := func(what string, d time.Duration) {
		mu.Lock()
		probes[what] = append(probes[what], d)
		mu.Unlock()
	}
	// The job page, loaded every 100 ms.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			l, _, _ := timeGET(ui, k.URL, jobURL, 1, false)
			record("UI job page (renders the log tail)", l[0])
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// The job over the API, every 100 ms.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			l, _, _ := timeGET(client, k.URL, fmt.Sprintf("/api/v4/projects/%d/jobs/%d", pid, jobID), 1, true)
			record("API GET job", l[0])
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// A live log follower that behaves like the page's script: next chunk
	// after 100 ms while behind, after 1 s when caught up. It starts at the
	// tail, as a page opened during the run does.
	var followed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		var off int64
		if size, ok := traceSize(); ok {
			off = size
		}
		for !done.Load() {
			t0 := time.Now()
			resp, err := ui.Get(fmt.Sprintf("%s%s/trace.json?offset=%d", k.URL, jobURL, off))
			if err != nil {
				return
			}
			var t struct{ Offset, Size int64 }
			json.NewDecoder(resp.Body).Decode(&t)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			record("UI live log poll (trace.json)", time.Since(t0))
			followed.Add(t.Offset - off)
			off = t.Offset
			if t.Offset < t.Size {
				time.Sleep(100 * time.Millisecond)
			} else {
				time.Sleep(time.Second)
			}
		}
	}()

	// The stored log's size, sampled every 5 ms: when its first and last
	// bytes arrived.
	var first, last time.Time
	var lastSize int64
	var sizeMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			if size, ok := traceSize(); ok {
				sizeMu.Lock()
				if size != lastSize {
					if first.IsZero() {
						first = time.Now()
					}
					lastSize, last = size, time.Now()
				}
				sizeMu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// Memory every 50 ms until the job finishes.
	maxRSS, maxRunner := 0, 0
	var rssSamples []int
	tStart := time.Now()
	var jobStart, jobEnd *string
	status := ""
	for n := 0; time.Since(tStart) < 10*time.Minute; n++ {
		rss := k.rssKiB()
		maxRSS = max(maxRSS, rss)
		maxRunner = max(maxRunner, rssOf(runnerPid))
		if n%4 == 0 {
			rssSamples = append(rssSamples, rss)
		}
		if n%10 == 0 {
			var j struct {
				jobJSON
				FinishedAt *string `json:"finished_at"`
			}
			k.api("GET", fmt.Sprintf("/api/v4/projects/%d/jobs/%d", pid, jobID), nil, &j)
			if j.Status == "success" || j.Status == "failed" || j.Status == "canceled" {
				status, jobStart, jobEnd = j.Status, j.StartedAt, j.FinishedAt
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	done.Store(true)
	wg.Wait()
	<-profiled
	rssEnd := k.rssKiB()

	// Reading the whole log back over the API.
	t0 := time.Now()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v4/projects/%d/jobs/%d/trace", k.URL, pid, jobID), nil)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	var got int64
	if resp, err := client.Do(req); err == nil {
		got, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	readBack := time.Since(t0)

	secs := last.Sub(first).Seconds()
	fmt.Printf("Job %d ended %s; stored log %d bytes (job printed %d).\n\n", jobID, status, lastSize, size)
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---:|---|")
	if secs > 0 {
		fmt.Printf("| runner → server, first to last stored byte | %.1f MB/s (%.1f s) | ≥ 100 MB/s |\n", float64(lastSize)/1e6/secs, secs)
	}
	if jobStart != nil && jobEnd != nil {
		a, _ := time.Parse(time.RFC3339Nano, *jobStart)
		b, _ := time.Parse(time.RFC3339Nano, *jobEnd)
		fmt.Printf("| job assigned → finished (script, log streamed, final update) | %.2f s (%.1f MB/s of log) | |\n", b.Sub(a).Seconds(), float64(lastSize)/1e6/b.Sub(a).Seconds())
	}
	fmt.Printf("| server RSS before / max during / after | %.1f / %.1f / %.1f MB | flat |\n", float64(rss0)/1024, float64(maxRSS)/1024, float64(rssEnd)/1024)
	if !builtin {
		fmt.Printf("| runner process RSS, max | %.1f MB | (agent) |\n", float64(maxRunner)/1024)
	}
	fmt.Printf("| live follower: bytes received during the run | %.1f MB | |\n", float64(followed.Load())/1e6)
	fmt.Printf("| GET .../jobs/:id/trace of the finished job | %.1f MB in %s (%.0f MB/s) | |\n", float64(got)/1e6, ms(readBack), float64(got)/1e6/readBack.Seconds())
	fmt.Println()
	fmt.Println("| request during the run | p50 | p90 | requests | target |")
	fmt.Println("|---|---:|---:|---:|---|")
	for _, what := range []string{"UI job page (renders the log tail)", "UI live log poll (trace.json)", "API GET job"} {
		l := probes[what]
		sortDur(l)
		fmt.Printf("| %s | %s | %s | %d | responsive |\n", what, ms(pct(l, 50)), ms(pct(l, 90)), len(l))
	}
	fmt.Printf("\nServer RSS samples (MB, every 200 ms):")
	for i, s := range rssSamples {
		if i%5 == 0 {
			fmt.Printf(" %.0f", float64(s)/1024)
		}
	}
	fmt.Println()
}

// startLogRunner registers a runner and starts `kiln runner run` with the
// log limit raised; it returns the process (group) id.
func startLogRunner(bin, work string, k *kiln, limit int64) int {
	var r struct{ Token string }
	code, err := k.api("POST", "/api/v4/user/runners", url.Values{"runner_type": {"instance_type"}, "description": {"logs"}, "run_untagged": {"true"}}, &r)
	if err != nil || code != 201 {
		check(fmt.Errorf("create runner: %d %v", code, err))
	}
	rdir, _ := os.MkdirTemp(work, "runner")
	rlog, _ := os.Create(filepath.Join(work, "runner.log"))
	rc := exec.Command(bin, "runner", "run", "--url", k.URL, "--token", r.Token, "--builds-dir", filepath.Join(rdir, "builds"),
		"--cache-dir", filepath.Join(rdir, "cache"), "--output-limit", strconv.FormatInt(limit>>10, 10))
	rc.Env = append(os.Environ(), "KILN_RUNNER_CONFIG="+filepath.Join(rdir, "runner.json"))
	rc.Stdout, rc.Stderr = rlog, rlog
	rc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(rc.Start())
	go rc.Wait()
	return rc.Process.Pid
}
