package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const rootToken = "glpat-bench-root-token-0123456789abcdef01"

// rootPassword signs root in to the web UI (scenario 5's UI pages).
const rootPassword = "bench-root-password-0123"

// kiln is one server process started for a scenario.
type kiln struct {
	bin     string
	URL     string
	dataDir string
	cmd     *exec.Cmd
	log     *os.File
}

// buildKiln compiles the binary once into dir.
func buildKiln(dir string) (string, error) {
	bin := filepath.Join(dir, "kiln")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
	cmd.Dir = repoRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return bin, cmd.Run()
}

// repoRoot finds the module root from the working directory upwards.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startKiln runs the server with a fresh data dir and waits for readiness.
func startKiln(bin, work, database string, args ...string) (*kiln, error) {
	dataDir, err := os.MkdirTemp(work, "data")
	if err != nil {
		return nil, err
	}
	return startKilnIn(bin, work, dataDir, database, args...)
}

// startKilnIn runs the server on an existing data dir (scenario 5 seeds one
// and restarts the server on it).
func startKilnIn(bin, work, dataDir, database string, args ...string) (*kiln, error) {
	return startKilnWrapped(nil, nil, bin, work, dataDir, database, args...)
}

// startKilnWrapped is startKilnIn with the server started through the
// command wrap (e.g. prlimit and its options; none: directly) and with env
// added to its environment.
func startKilnWrapped(wrap, env []string, bin, work, dataDir, database string, args ...string) (*kiln, error) {
	addr := freePort()
	all := append([]string{"server", "--listen", addr, "--data-dir", dataDir, "--log-level", "warn"}, args...)
	if database != "" {
		all = append(all, "--database", database)
	}
	logf, _ := os.OpenFile(filepath.Join(work, "server-"+filepath.Base(dataDir)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	name := bin
	if len(wrap) > 0 {
		name, all = wrap[0], append(append(slices.Clone(wrap[1:]), bin), all...)
	}
	cmd := exec.Command(name, all...)
	cmd.Env = append(append(os.Environ(), "KILN_INITIAL_ROOT_TOKEN="+rootToken, "KILN_INITIAL_ROOT_PASSWORD="+rootPassword), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &kiln{bin: bin, URL: "http://" + addr, dataDir: dataDir, cmd: cmd, log: logf}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(k.URL + "/-/readiness"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return k, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	k.stop()
	return nil, fmt.Errorf("server did not start; see %s", logf.Name())
}

func (k *kiln) stop() {
	syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	k.log.Close()
}

// rssKiB reads the server's resident set size.
func (k *kiln) rssKiB() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", k.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	return 0
}

// cpuTicks reads utime+stime of the server process (clock ticks, 100/s).
func (k *kiln) cpuTicks() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k.cmd.Process.Pid))
	s := string(b)
	i := strings.LastIndex(s, ")")
	f := strings.Fields(s[i+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}, Timeout: 120 * time.Second}

// api calls the REST API as root.
func (k *kiln) api(method, path string, form url.Values, out any) (int, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, k.URL+path, body)
	if err != nil {
		return 0, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, nil
}

// project creates a project and pushes a repository holding ci as .gitlab-ci.yml.
func (k *kiln) project(work, name, ci string) (int64, error) {
	var p struct{ ID int64 }
	if code, err := k.api("POST", "/api/v4/projects", url.Values{"name": {name}}, &p); err != nil || code != 201 {
		return 0, fmt.Errorf("create project: %d %v", code, err)
	}
	dir, _ := os.MkdirTemp(work, "repo")
	os.WriteFile(filepath.Join(dir, ".gitlab-ci.yml"), []byte(ci), 0o644)
	u, _ := url.Parse(k.URL)
	u.User = url.UserPassword("root", rootToken)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "bench [ci skip]"}, {"push", "-q", u.String() + "/root/" + name + ".git", "main"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@b", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@b")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("git %v: %v %s", args, err, out)
		}
	}
	return p.ID, nil
}

// triggerToken creates a trigger token on the project.
func (k *kiln) triggerToken(projectID int64) (string, error) {
	var t struct{ Token string }
	code, err := k.api("POST", fmt.Sprintf("/api/v4/projects/%d/triggers", projectID), url.Values{"description": {"bench"}}, &t)
	if err != nil || code != 201 {
		return "", fmt.Errorf("create trigger: %d %v", code, err)
	}
	return t.Token, nil
}

// trigger fires one trigger request and returns the status and pipeline id.
func (k *kiln) trigger(projectID int64, token string) (int, int64, error) {
	form := url.Values{"token": {token}, "ref": {"main"}}
	resp, err := client.Post(fmt.Sprintf("%s/api/v4/projects/%d/trigger/pipeline", k.URL, projectID), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var p struct{ ID int64 }
	raw, _ := io.ReadAll(resp.Body)
	json.NewDecoder(bytes.NewReader(raw)).Decode(&p)
	return resp.StatusCode, p.ID, nil
}
