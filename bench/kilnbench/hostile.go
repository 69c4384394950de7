package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// The hostile scenario runs each attack of issue #13 against a fresh server
// under a memory cap and measures, while it runs, the server's peak RSS
// and open descriptors and the latency of a normal client's API call. All
// loops are bounded and everything targets 127.0.0.1.
//
//	go run ./bench/kilnbench -scenario hostile [-db sqlite,postgres] [-attack-for 10s]

// hostileCap is the address-space cap the server runs under (the Go
// runtime reserves ~2 GiB of virtual memory at start; the unfixed server
// needed 6.2 GB of RSS for one YAML bomb) and hostileFDs its descriptor
// limit (the 1024 of many distributions).
const (
	hostileCap = 3 << 30
	hostileFDs = 1024
)

type attack struct {
	name string
	// prepare runs before measuring (projects, pipelines); run is the
	// attack, which must stop when ctx is done.
	prepare func(k *kiln) any
	run     func(ctx context.Context, k *kiln, state any)
}

type hostileResult struct {
	name               string
	peakRSSMiB, maxFDs int
	p50, p99, max      time.Duration
	calls, failed      int
	survived           bool
	attackStats        string
}

func hostile(bin, work, db, dsn string, d time.Duration) {
	prlimit, _ := exec.LookPath("prlimit")
	fmt.Printf("\n## hostile (%s): each attack %s against a fresh server", db, d)
	if prlimit != "" {
		fmt.Printf(" under prlimit --as=%d --nofile=%d, GOMEMLIMIT=512MiB", hostileCap, hostileFDs)
	}
	fmt.Println()
	var stats sync.Map
	note := func(name, s string) { stats.Store(name, s) }
	attacks := []attack{
		{name: "baseline (no attack)", run: func(ctx context.Context, k *kiln, _ any) { <-ctx.Done() }},
		{name: "YAML alias bomb: 0.9 MB lint, 1.3 GB expanded, 2 clients", prepare: lintProject,
			run: func(ctx context.Context, k *kiln, st any) {
				bomb := benchAliasBomb(900<<10, 1500)
				var n, refused atomic.Int64
				parallel(ctx, 2, func() {
					code, body := postJSON(k, fmt.Sprintf("/api/v4/projects/%d/ci/lint", st.(int64)), map[string]any{"content": bomb})
					n.Add(1)
					if code == 200 && strings.Contains(body, "The parsed YAML is too big") {
						refused.Add(1)
					}
				})
				note("YAML", fmt.Sprintf("%d lints, %d refused as too big", n.Load(), refused.Load()))
			}},
		{name: "1,030 idle connections (keep-alive and silent)", run: func(ctx context.Context, k *kiln, _ any) {
			host := strings.TrimPrefix(k.URL, "http://")
			var conns []net.Conn
			for i := 0; i < 1030 && ctx.Err() == nil; i++ {
				c, err := net.DialTimeout("tcp", host, time.Second)
				if err != nil {
					continue
				}
				if i%2 == 0 {
					fmt.Fprintf(c, "GET /-/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
				}
				conns = append(conns, c)
			}
			<-ctx.Done()
			closed := 0
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(time.Millisecond))
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
							closed++
						}
						break
					}
				}
				c.Close()
			}
			note("idle", fmt.Sprintf("%d opened, %d closed by the server", len(conns), closed))
		}},
		{name: "300 slow-header clients (1 byte/s)", run: func(ctx context.Context, k *kiln, _ any) {
			host := strings.TrimPrefix(k.URL, "http://")
			var dropped atomic.Int64
			parallel(ctx, 300, func() {
				c, err := net.DialTimeout("tcp", host, time.Second)
				if err != nil {
					return
				}
				defer c.Close()
				fmt.Fprintf(c, "GET /api/v4/version HTTP/1.1\r\nHost: x\r\n")
				for ctx.Err() == nil {
					if _, err := c.Write([]byte("X")); err != nil {
						dropped.Add(1)
						return
					}
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			})
			note("slow", fmt.Sprintf("%d connections dropped by the server", dropped.Load()))
		}},
		{name: "3,000 anonymous event streams on a blocked public pipeline", prepare: blockedPublicPipeline,
			run: func(ctx context.Context, k *kiln, st any) {
				u := k.URL + st.(string)
				var ok, refused atomic.Int64
				sem := make(chan struct{}, 3000)
				var wg sync.WaitGroup
				tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 0, DisableKeepAlives: true}
				cl := &http.Client{Transport: tr}
				for i := 0; i < 3000 && ctx.Err() == nil; i++ {
					sem <- struct{}{}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
						resp, err := cl.Do(req)
						if err != nil {
							return
						}
						if resp.StatusCode == 429 {
							refused.Add(1)
						} else {
							ok.Add(1)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}()
				}
				wg.Wait()
				note("streams", fmt.Sprintf("%d streams admitted, %d refused with 429", ok.Load(), refused.Load()))
			}},
		{name: "web sign-in guessing, 64 parallel", run: func(ctx context.Context, k *kiln, _ any) {
			var n, throttled atomic.Int64
			parallel(ctx, 64, func() {
				code := benchSignIn(k, "root", "wrong-"+strconv.Itoa(int(n.Add(1))))
				if code == 429 || code == 503 {
					throttled.Add(1)
				}
			})
			note("signin", fmt.Sprintf("%d attempts, %d throttled (429/503)", n.Load(), throttled.Load()))
		}},
		{name: "anonymous trigger calls into a private project, 16 parallel", prepare: lintProject,
			run: func(ctx context.Context, k *kiln, st any) {
				var n, limited atomic.Int64
				u := fmt.Sprintf("%s/api/v4/projects/%d/trigger/pipeline", k.URL, st.(int64))
				parallel(ctx, 16, func() {
					resp, err := http.PostForm(u, url.Values{"token": {"glptt-" + strconv.Itoa(int(n.Add(1)))}, "ref": {"main"}})
					if err != nil {
						return
					}
					if resp.StatusCode == 429 {
						limited.Add(1)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				})
				var ds []map[string]any
				k.api("GET", fmt.Sprintf("/api/v4/projects/%d/triggers/deliveries?per_page=100", st.(int64)), nil, &ds)
				note("deliveries", fmt.Sprintf("%d calls, %d rate-limited, %d rows written", n.Load(), limited.Load(), len(ds)))
			}},
	}
	keys := []string{"", "YAML", "idle", "slow", "streams", "signin", "deliveries"}
	fmt.Println("\n| attack | server peak RSS | max open fds | normal call p50 / p99 / max | normal calls failed | survived | attack |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var base time.Duration
	for i, a := range attacks {
		r := runAttack(bin, work, db, dsn, prlimit, a, d)
		if v, ok := stats.Load(keys[i]); ok {
			r.attackStats = v.(string)
		}
		if i == 0 {
			base = r.p99
		}
		ratio := ""
		if base > 0 && i > 0 {
			ratio = fmt.Sprintf(" (%.1fx)", float64(r.p99)/float64(base))
		}
		fmt.Printf("| %s | %d MiB | %d | %s / %s%s / %s | %d of %d | %v | %s |\n", r.name, r.peakRSSMiB, r.maxFDs, ms(r.p50), ms(r.p99), ratio, ms(r.max), r.failed, r.calls, r.survived, r.attackStats)
	}
}

// runAttack starts a fresh server, runs the attack for d while a normal
// client calls GET /api/v4/version every 20 ms and a sampler reads the
// server's descriptors, then reports.
func runAttack(bin, work, db, dsn, prlimit string, a attack, d time.Duration) hostileResult {
	if db == "postgres" {
		dsn = freshSchemaFrom(dsn)
	}
	k, err := startHostileKiln(bin, work, dsn, prlimit)
	check(err)
	defer k.stop()
	var st any
	if a.prepare != nil {
		st = a.prepare(k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res := hostileResult{name: a.name}
	var lat []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.run(ctx, k, st) }()
	go func() {
		defer wg.Done()
		// A fresh connection per call: what a new client (or a runner
		// reconnecting) needs, and what idle-connection attacks take away.
		normal := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for ctx.Err() == nil {
			start := time.Now()
			req, _ := http.NewRequest("GET", k.URL+"/api/v4/version", nil)
			req.Header.Set("PRIVATE-TOKEN", rootToken)
			resp, err := normal.Do(req)
			el := time.Since(start)
			mu.Lock()
			res.calls++
			if err != nil || resp.StatusCode != 200 {
				res.failed++
				el = 10 * time.Second
			}
			lat = append(lat, el)
			mu.Unlock()
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		pid := k.cmd.Process.Pid
		for ctx.Err() == nil {
			if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil && len(ents) > res.maxFDs {
				res.maxFDs = len(ents)
			}
			// VmHWM is gone once the process dies: keep the peak as seen.
			if hwm := procField(pid, "VmHWM") / 1024; hwm > res.peakRSSMiB {
				res.peakRSSMiB = hwm
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	if hwm := procField(k.cmd.Process.Pid, "VmHWM") / 1024; hwm > res.peakRSSMiB {
		res.peakRSSMiB = hwm
	}
	// A dead (zombie) server has no memory fields left.
	res.survived = procField(k.cmd.Process.Pid, "VmRSS") > 0
	sortDur(lat)
	res.p50, res.p99 = pct(lat, 50), pct(lat, 99)
	if len(lat) > 0 {
		res.max = lat[len(lat)-1]
	}
	return res
}

func startHostileKiln(bin, work, dsn, prlimit string) (*kiln, error) {
	dataDir, err := os.MkdirTemp(work, "data")
	if err != nil {
		return nil, err
	}
	var wrap []string
	if prlimit != "" {
		wrap = []string{prlimit, fmt.Sprintf("--as=%d", hostileCap), fmt.Sprintf("--nofile=%d:%d", hostileFDs, hostileFDs)}
	}
	return startKilnWrapped(wrap, []string{"GOMEMLIMIT=512MiB"}, bin, work, dataDir, dsn, "--builtin-runners", "0")
}

// freshSchemaFrom makes a new schema next to the one dsn names.
func freshSchemaFrom(dsn string) string {
	base := regexp.MustCompile(`[?&]search_path=[^&]*`).ReplaceAllString(dsn, "")
	return freshSchema(base)
}

// parallel runs fn in n goroutines, each in a loop, until ctx is done.
func parallel(ctx context.Context, n int, fn func()) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fn()
			}
		}()
	}
	wg.Wait()
}

func procField(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	return 0
}

func benchAliasBomb(size, aliases int) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".big: &big %s\n", strings.Repeat("x", size))
	b.WriteString("job:\n  script: echo\n  variables:\n")
	for i := 0; i < aliases; i++ {
		fmt.Fprintf(&b, "    V%d: *big\n", i)
	}
	return b.String()
}

func postJSON(k *kiln, path string, body map[string]any) (int, string) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", k.URL+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	cl := &http.Client{Timeout: 60 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// lintProject is a private project with a trivial CI file.
func lintProject(k *kiln) any {
	id, err := k.project(filepath.Dir(k.dataDir), "app", "job: {script: echo}\n")
	check(err)
	return id
}

// blockedPublicPipeline makes a public project whose pipeline waits on a
// manual job, and returns its event stream's path.
func blockedPublicPipeline(k *kiln) any {
	id, err := k.project(filepath.Dir(k.dataDir), "pub", "gate: {script: echo, when: manual, allow_failure: false}\nafter: {stage: deploy, script: echo}\n")
	check(err)
	k.api("PUT", fmt.Sprintf("/api/v4/projects/%d", id), url.Values{"visibility": {"public"}}, nil)
	var pl struct{ ID int64 }
	code, err := k.api("POST", fmt.Sprintf("/api/v4/projects/%d/pipeline", id), url.Values{"ref": {"main"}}, &pl)
	if err != nil || code != 201 {
		check(fmt.Errorf("create pipeline: %d %v", code, err))
	}
	return fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/events", id, pl.ID)
}

// benchSignIn posts one sign-in attempt with a fresh form token.
func benchSignIn(k *kiln, user, password string) int {
	cl := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(k.URL + "/users/sign_in")
	if err != nil {
		return 0
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		return 0
	}
	req, _ := http.NewRequest("POST", k.URL+"/users/sign_in", strings.NewReader(url.Values{"authenticity_token": {string(m[1])}, "username": {user}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = cl.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
