package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var startRE = regexp.MustCompile(`KILNSTART([0-9]{19})`)

// setup starts a server and returns it with a seed project and a trigger token.
func setup(bin, work, dsn string, args ...string) (*kiln, int64, string) {
	k, err := startKiln(bin, work, dsn, args...)
	check(err)
	pid, err := k.project(work, fmt.Sprintf("seed%d", time.Now().UnixNano()), seedCI)
	check(err)
	tok, err := k.triggerToken(pid)
	check(err)
	return k, pid, tok
}

// load fires triggers from c clients for d and returns the rate of 201s and
// their latencies.
func load(k *kiln, pid int64, tok string, c int, d time.Duration) (float64, []time.Duration, int) {
	return loadReplicas([]*kiln{k}, pid, tok, c, d)
}

// paced fires triggers at a fixed arrival rate for d (open loop) and
// returns the latencies.
func paced(k *kiln, pid int64, tok string, rate float64, d time.Duration) []time.Duration {
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, 1024)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			if code, _, err := k.trigger(pid, tok); err == nil && code == 201 {
				mu.Lock()
				lats = append(lats, time.Since(t0))
				mu.Unlock()
			}
		}()
		// Sleep to the i+1-th arrival time so that slow sends don't lower the rate.
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * interval)))
	}
	wg.Wait()
	sortDur(lats)
	return lats
}

// profileTo, when set, receives a CPU profile of the server taken during the
// highest-concurrency throughput step.
var profileTo string

func throughput(bin, work, db, dsn string, levels []int, d time.Duration, runs int) {
	fmt.Printf("\n## Scenario 1: durable trigger throughput (%s, seed 3-job pipeline, no runners)\n\n", db)
	fmt.Println("| clients | pipelines/s (median of runs) | p50 | p90 | p99 | failed |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	debug := freePort()
	k, pid, tok := setup(bin, work, dsn, "--builtin-runners", "0", "--debug-listen", debug)
	defer k.stop()
	load(k, pid, tok, 4, time.Second) // warm up: config cache, connections
	peak := 0.0
	for _, c := range levels {
		var rates []float64
		var all []time.Duration
		failed := 0
		for r := 0; r < runs; r++ {
			if profileTo != "" && c == levels[len(levels)-1] && r == 0 {
				go saveProfile(debug, d, profileTo+"."+db)
			}
			rate, lats, f := load(k, pid, tok, c, d)
			rates = append(rates, rate)
			all = append(all, lats...)
			failed += f
		}
		sortDur(all)
		m := median(rates)
		if m > peak {
			peak = m
		}
		fmt.Printf("| %d | %.0f | %s | %s | %s | %d |\n", c, m, ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99)), failed)
	}
	fmt.Printf("\nOpen-loop latency at fractions of the peak (%.0f/s):\n\n", peak)
	fmt.Println("| offered rate | p50 | p90 | p99 |")
	fmt.Println("|---:|---:|---:|---:|")
	for _, f := range []float64{0.5, 0.9} {
		lats := paced(k, pid, tok, peak*f, d)
		fmt.Printf("| %.0f/s (%.0f%%) | %s | %s | %s |\n", peak*f, f*100, ms(pct(lats, 50)), ms(pct(lats, 90)), ms(pct(lats, 99)))
	}
}

type jobJSON struct {
	ID        int64   `json:"id"`
	Name      string  `json:"name"`
	Status    string  `json:"status"`
	StartedAt *string `json:"started_at"`
}

// waitFirstRunning polls until the pipeline's first job has started.
func waitFirstRunning(k *kiln, pid, plID int64) (*jobJSON, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var jobs []jobJSON
		k.api("GET", fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs", pid, plID), nil, &jobs)
		for _, j := range jobs {
			if j.Name == "test" && j.Status != "pending" && j.Status != "created" {
				return &j, nil
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	return nil, fmt.Errorf("pipeline %d: first job never started", plID)
}

func latency(bin, work, db, dsn string, n int) {
	fmt.Printf("\n## Scenario 2: trigger → first job running (%s, 2 idle built-in runners)\n\n", db)
	k, err := startKiln(bin, work, dsn, "--builtin-runners", "2")
	check(err)
	defer k.stop()
	// The first job prints a nanosecond timestamp the moment its script starts.
	ci := "variables: {GIT_STRATEGY: none}\n" + strings.Replace(seedCI, "test:\n  stage: test\n  script: \"true\"", "test:\n  stage: test\n  script: date +KILNSTART%s%N", 1)
	pid, err := k.project(work, "latency", ci)
	check(err)
	tok, err := k.triggerToken(pid)
	check(err)
	var httpLat, assigned, scriptStart []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		code, plID, err := k.trigger(pid, tok)
		if err != nil || code != 201 {
			check(fmt.Errorf("trigger: %d %v", code, err))
		}
		httpLat = append(httpLat, time.Since(t0))
		j, err := waitFirstRunning(k, pid, plID)
		check(err)
		if j.StartedAt != nil {
			if st, err := time.Parse(time.RFC3339Nano, *j.StartedAt); err == nil {
				assigned = append(assigned, st.Sub(t0))
			}
		}
		// Read the trace for the script's own start time.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v4/projects/%d/jobs/%d/trace", k.URL, pid, j.ID), nil)
			req.Header.Set("PRIVATE-TOKEN", rootToken)
			resp, err := client.Do(req)
			if err == nil {
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				resp.Body.Close()
				// The trace echoes the command line first; the digits follow only in its output.
				if m := startRE.FindStringSubmatch(buf.String()); m != nil {
					ns, _ := strconv.ParseInt(m[1], 10, 64)
					scriptStart = append(scriptStart, time.Unix(0, ns).Sub(t0))
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The runners must be idle again before the next sample.
		waitPipeline(k, pid, plID)
		time.Sleep(20 * time.Millisecond)
	}
	sortDur(httpLat)
	sortDur(assigned)
	sortDur(scriptStart)
	fmt.Println("| stage (from the client's POST) | p50 | p99 | samples |")
	fmt.Println("|---|---:|---:|---:|")
	fmt.Printf("| 201 answered (HTTP, token, ref, config, insert, commit) | %s | %s | %d |\n", ms(pct(httpLat, 50)), ms(pct(httpLat, 99)), len(httpLat))
	fmt.Printf("| job assigned to a runner (started_at, ms resolution) | %s | %s | %d |\n", ms(pct(assigned, 50)), ms(pct(assigned, 99)), len(assigned))
	fmt.Printf("| job script running (timestamp printed by the script) | %s | %s | %d |\n", ms(pct(scriptStart, 50)), ms(pct(scriptStart, 99)), len(scriptStart))
}

// waitPipeline polls (every 2 ms: scenario 3 measures latency) until the
// pipeline completes and returns its status, "timeout" after a minute.
func waitPipeline(k *kiln, pid, plID int64) string {
	return pollPipeline(k, pid, plID, 60*time.Second, 2*time.Millisecond)
}

// pollPipeline asks for the pipeline every poll until it completes and
// returns its status, "timeout" after d.
func pollPipeline(k *kiln, pid, plID int64, d, poll time.Duration) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var p struct{ Status string }
		k.api("GET", fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", pid, plID), nil, &p)
		switch p.Status {
		case "success", "failed", "canceled", "skipped":
			return p.Status
		}
		time.Sleep(poll)
	}
	return "timeout"
}

func overhead(bin, work, db, dsn string, n int, gcl string) {
	fmt.Printf("\n## Scenario 3: seed pipeline trigger → success (%s, 2 built-in runners)\n\n", db)
	k, err := startKiln(bin, work, dsn, "--builtin-runners", "2")
	check(err)
	defer k.stop()
	fmt.Println("| tool | p50 | p90 | runs |")
	fmt.Println("|---|---:|---:|---:|")
	var kilnD []time.Duration
	for _, variant := range []struct{ name, ci string }{
		{"kiln, jobs fetch the repository (default GIT_STRATEGY)", seedCI},
		{"kiln, GIT_STRATEGY: none", strings.ReplaceAll(seedCI, "script: \"true\"", "variables: {GIT_STRATEGY: none}\n  script: \"true\"")},
	} {
		pid, err := k.project(work, fmt.Sprintf("overhead%d", time.Now().UnixNano()), variant.ci)
		check(err)
		tok, err := k.triggerToken(pid)
		check(err)
		var d []time.Duration
		for i := 0; i < n; i++ {
			t0 := time.Now()
			code, plID, err := k.trigger(pid, tok)
			if err != nil || code != 201 {
				check(fmt.Errorf("trigger: %d %v", code, err))
			}
			if st := waitPipeline(k, pid, plID); st != "success" {
				check(fmt.Errorf("pipeline %d ended %s", plID, st))
			}
			d = append(d, time.Since(t0))
		}
		sortDur(d)
		fmt.Printf("| %s (trigger → pipeline success) | %s | %s | %d |\n", variant.name, ms(pct(d, 50)), ms(pct(d, 90)), len(d))
		if kilnD == nil {
			kilnD = d // the ratio compares the like-for-like variant: both tools get the sources
		}
	}
	if gcl == "" {
		fmt.Println("\n(gitlab-ci-local not given: -gcl PATH)")
		return
	}
	dir, _ := os.MkdirTemp(work, "gcl")
	os.WriteFile(filepath.Join(dir, ".gitlab-ci.yml"), []byte(seedCI), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Run()
	}
	var gclD []time.Duration
	runs := n / 5
	if runs < 3 {
		runs = 3
	}
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		cmd := exec.Command(gcl, "--shell-isolation=false")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			cmd = exec.Command(gcl)
			cmd.Dir = dir
			t0 = time.Now()
			out, err = cmd.CombinedOutput()
		}
		if err != nil {
			fmt.Printf("gitlab-ci-local failed: %v\n%s\n", err, out)
			return
		}
		gclD = append(gclD, time.Since(t0))
	}
	sortDur(gclD)
	fmt.Printf("| gitlab-ci-local 4.50.0 (shell executor) | %s | %s | %d |\n", ms(pct(gclD, 50)), ms(pct(gclD, 90)), len(gclD))
	fmt.Printf("\nRatio (gitlab-ci-local p50 / kiln-with-git-fetch p50, same run): **%.1f×**\n", float64(pct(gclD, 50))/float64(pct(kilnD, 50)))
}

func footprint(bin, work, db, dsn string) {
	fmt.Printf("\n## Scenario 4: footprint (%s)\n\n", db)
	k, err := startKiln(bin, work, dsn, "--builtin-runners", "2")
	check(err)
	time.Sleep(3 * time.Second)
	idle := k.rssKiB()
	t0, c0 := time.Now(), k.cpuTicks()
	time.Sleep(5 * time.Second)
	idleCPU := float64(k.cpuTicks()-c0) / 100 / time.Since(t0).Seconds() * 100
	k.stop()

	k, err = startKiln(bin, work, dsn, "--builtin-runners", "0")
	check(err)
	defer k.stop()
	// 100 runners long-polling with nothing to do.
	var tokens []string
	for i := 0; i < 100; i++ {
		var r struct{ Token string }
		code, err := k.api("POST", "/api/v4/user/runners", url.Values{"runner_type": {"instance_type"}, "description": {fmt.Sprintf("idle-%d", i)}}, &r)
		if err != nil || code != 201 {
			check(fmt.Errorf("create runner: %d %v", code, err))
		}
		tokens = append(tokens, r.Token)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var polls atomic.Int64
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"token": tok, "info": map[string]any{"name": "kilnbench", "features": map[string]bool{"refspecs": true}}})
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(k.URL+"/api/v4/jobs/request", "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
				polls.Add(1)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	t0, c0 = time.Now(), k.cpuTicks()
	p0 := polls.Load()
	time.Sleep(10 * time.Second)
	pollCPU := float64(k.cpuTicks()-c0) / 100 / time.Since(t0).Seconds() * 100
	pollCount := polls.Load() - p0
	close(stop)
	// Requests are long-polls: closing the client's connections ends them.
	client.CloseIdleConnections()

	pid, tok := int64(0), ""
	pid, err = k.project(work, "rss", seedCI)
	check(err)
	tok, err = k.triggerToken(pid)
	check(err)
	before := k.rssKiB()
	var fired atomic.Int64
	var wg2 sync.WaitGroup
	for c := 0; c < 16; c++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for fired.Add(1) <= 10000 {
				k.trigger(pid, tok)
			}
		}()
	}
	wg2.Wait()
	after := k.rssKiB()
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---:|---|")
	fmt.Printf("| idle RSS, 2 built-in runners | %.1f MB | ≤ 30 MB |\n", float64(idle)/1024)
	fmt.Printf("| idle CPU, 2 built-in runners | %.2f %% of a core | ≈ 0 |\n", idleCPU)
	fmt.Printf("| CPU with 100 idle runners long-polling (10 s) | %.2f %% of a core (%d poll requests completed) | ≈ 0 |\n", pollCPU, pollCount)
	fmt.Printf("| RSS before / after 10,000 pipelines | %.1f MB / %.1f MB | flat |\n", float64(before)/1024, float64(after)/1024)
}

func saveProfile(addr string, d time.Duration, path string) {
	secs := int(d.Seconds()) - 1
	if secs < 1 {
		secs = 1
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	f.ReadFrom(resp.Body)
	fmt.Fprintln(os.Stderr, "CPU profile written to", path)
}
