// Command runners measures the runner protocol's two speed targets against
// the real kiln binary (SQLite, no built-in runners):
//
//   - latency from a job becoming pending (jobs.queued_at, written by the
//     engine) to an idle long-polling runner receiving it (the 201), and
//   - the server's CPU use while 100 runners long-poll with nothing to do.
//
// Usage: go run ./bench/runners [-jobs 40] [-idle 100] [-window 20s]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kilnci/kiln/internal/runner/client"
)

const rootToken = "glpat-bench-root-token-0123456789abcdef"

func main() {
	jobs := flag.Int("jobs", 40, "jobs to time")
	idle := flag.Int("idle", 100, "idle long-polling runners for the CPU measurement")
	window := flag.Duration("window", 20*time.Second, "CPU measurement window")
	flag.Parse()
	if err := run(*jobs, *idle, *window); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(nJobs, nIdle int, window time.Duration) error {
	dir, err := os.MkdirTemp("", "kiln-bench-runners")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kiln").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	data := filepath.Join(dir, "data")
	srv := exec.Command(bin, "server", "--listen", addr, "--data-dir", data, "--builtin-runners", "0")
	srv.Env = append(os.Environ(), "KILN_INITIAL_ROOT_TOKEN="+rootToken, "KILN_INITIAL_ROOT_PASSWORD=benchpassword1", "KILN_LOG_LEVEL=warn")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	for i := 0; ; i++ {
		if r, err := http.Get(base + "/-/readiness"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 200 {
			return fmt.Errorf("server not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var proj map[string]any
	if err := api("POST", base+"/api/v4/projects", url.Values{"name": {"bench"}, "path": {"bench"}}, &proj); err != nil {
		return err
	}
	_ = proj
	newRunner := func(tags string, untagged bool) (string, error) {
		var out map[string]any
		err := api("POST", base+"/api/v4/user/runners", map[string]any{"runner_type": "instance_type", "tag_list": tags, "run_untagged": untagged}, &out)
		tok, _ := out["token"].(string)
		return tok, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan [2]int64, 16) // job id, unix µs received
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := 0; i < 4; i++ {
		tok, err := newRunner("", true)
		if err != nil {
			return err
		}
		c, err := client.New(client.Options{URL: base, Token: tok, HTTPClient: &http.Client{}})
		if err != nil {
			return err
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				job, err := c.RequestJob(ctx)
				if err != nil || job == nil {
					continue
				}
				got := time.Now().UnixMicro()
				c.UpdateJob(ctx, job.ID, job.Token, client.UpdateJobRequest{State: client.StateSuccess})
				received <- [2]int64{job.ID, got}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // pollers are waiting

	work := filepath.Join(dir, "work")
	gitc := func(args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@b", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@b", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v %s", args, err, out)
		}
		return nil
	}
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, ".gitlab-ci.yml"), []byte("job:\n  script: [\"true\"]\n"), 0o644)
	if err := gitc("init", "-q", "-b", "main"); err != nil {
		return err
	}
	remote := strings.Replace(base, "://", "://root:"+rootToken+"@", 1) + "/root/bench.git"
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "kiln.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var lat []time.Duration
	for i := 0; i < nJobs; i++ {
		os.WriteFile(filepath.Join(work, "n"), []byte(strconv.Itoa(i)), 0o644)
		if err := gitc("add", "-A"); err != nil {
			return err
		}
		if err := gitc("commit", "-q", "-m", "c"+strconv.Itoa(i)); err != nil {
			return err
		}
		if err := gitc("push", "-q", remote, "main"); err != nil {
			return err
		}
		select {
		case r := <-received:
			var queued int64
			if err := db.QueryRow(`SELECT queued_at FROM jobs WHERE id = ?`, r[0]).Scan(&queued); err != nil {
				return err
			}
			lat = append(lat, time.Duration(r[1]-queued)*time.Microsecond)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("job %d never reached a runner", i)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("pending → runner receives job (%d jobs, 4 idle runners): p50 %s  p90 %s  max %s\n", len(lat), pct(0.5), pct(0.9), lat[len(lat)-1])

	// Idle CPU with nIdle long-polling runners.
	for i := 0; i < nIdle; i++ {
		tok, err := newRunner("idle-only", false)
		if err != nil {
			return err
		}
		c, err := client.New(client.Options{URL: base, Token: tok, HTTPClient: &http.Client{}})
		if err != nil {
			return err
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				c.RequestJob(ctx)
			}
		})
	}
	time.Sleep(3 * time.Second)
	t0, w0 := cpuTicks(srv.Process.Pid), time.Now()
	time.Sleep(window)
	t1, w1 := cpuTicks(srv.Process.Pid), time.Now()
	secs := float64(t1-t0) / 100 // USER_HZ
	fmt.Printf("server CPU with %d idle long-polling runners (+4): %.2f%% of one core over %s (%.2fs CPU)\n", nIdle, 100*secs/w1.Sub(w0).Seconds(), window, secs)
	var polls string
	if r, err := http.Get(base + "/metrics"); err == nil {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		r.Body.Close()
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "kiln_runner_") {
				polls += "  " + l + "\n"
			}
		}
	}
	fmt.Print(polls)
	return nil
}

// cpuTicks reads utime+stime of a process from /proc.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func api(method, u string, body any, out any) error {
	var rd *bytes.Reader
	ct := "application/json"
	switch b := body.(type) {
	case url.Values:
		rd, ct = bytes.NewReader([]byte(b.Encode())), "application/x-www-form-urlencoded"
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d", method, u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
