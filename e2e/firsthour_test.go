package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var patRE = regexp.MustCompile(`glpat-[0-9a-f]{20,}`)

// startBare starts `kiln server` without the harness's preset credentials
// and returns its log and a channel closed when it exits.
func startBare(t *testing.T, args ...string) (*procLog, chan struct{}, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(kilnBin, append([]string{"server", "--builtin-runners=0"}, args...)...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KILN_INITIAL_ROOT_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var l procLog
	done, err := l.start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return &l, done, cmd
}

// waitLog polls the log until match finds something (generous deadline).
func waitLog(t *testing.T, l *procLog, done chan struct{}, match func(string) string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := match(l.String()); m != "" {
			return m
		}
		select {
		case <-done:
			if m := match(l.String()); m != "" {
				return m
			}
			t.Fatalf("server exited:\n%s", l.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("timed out; log:\n%s", l.String())
	return ""
}

func apiUser(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v4/user", nil)
	req.Header.Set("PRIVATE-TOKEN", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCredentialsOnlyOnceListening: a first start that cannot bind its port
// prints no credentials and creates nothing, so the next start (on a free
// port, same data dir) still prints them, and they work. `kiln admin
// reset-root` against the data dir, with the server running, prints a new
// token and password that work too.
func TestCredentialsOnlyOnceListening(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	l, done, cmd := startBare(t, "--listen", busy.Addr().String(), "--data-dir", dir)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("server on a busy port did not exit:\n%s", l.String())
	}
	if cmd.ProcessState.Success() {
		t.Fatal("server on a busy port exited 0")
	}
	if patRE.MatchString(l.String()) || strings.Contains(l.String(), "web password") {
		t.Fatalf("credentials printed although the port was busy:\n%s", l.String())
	}

	addr := freeAddr(t)
	l, done, _ = startBare(t, "--listen", addr, "--data-dir", dir)
	token := waitLog(t, l, done, func(s string) string { return patRE.FindString(s) })
	out := l.String()
	if !strings.Contains(out, "web password") || !strings.Contains(out, "http://"+addr) || !strings.Contains(out, "kiln admin reset-root --data-dir "+dir) {
		t.Fatalf("banner incomplete:\n%s", out)
	}
	// The banner comes after the listener: the URL answers right away.
	if code := apiUser(t, "http://"+addr, token); code != http.StatusOK {
		t.Fatalf("printed token: %d", code)
	}

	reset := exec.Command(kilnBin, "admin", "reset-root", "--data-dir", dir, "--external-url", "http://"+addr)
	b, err := reset.CombinedOutput()
	if err != nil {
		t.Fatalf("reset-root: %v\n%s", err, b)
	}
	newToken := patRE.FindString(string(b))
	pw := regexp.MustCompile(`web password:\s+(\S+)`).FindStringSubmatch(string(b))
	if newToken == "" || newToken == token || pw == nil {
		t.Fatalf("reset-root output:\n%s", b)
	}
	if code := apiUser(t, "http://"+addr, newToken); code != http.StatusOK {
		t.Fatalf("reset token: %d", code)
	}
	webSignIn(t, &server{t: t, URL: "http://" + addr}, "root", pw[1]) // fails the test unless it signs in
	// A data dir without a database is an error, not a new empty database.
	empty := t.TempDir()
	if b, err := exec.Command(kilnBin, "admin", "reset-root", "--data-dir", empty).CombinedOutput(); err == nil || !strings.Contains(string(b), "no Kiln database") {
		t.Fatalf("reset-root on an empty dir: %v\n%s", err, b)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("reset-root created files in an empty dir: %v", entries)
	}
}

// TestCredentialsAsJSONFields: with --log-format json the first-start
// credentials are one structured log record with root_token and
// root_password fields.
func TestCredentialsAsJSONFields(t *testing.T) {
	addr := freeAddr(t)
	l, done, _ := startBare(t, "--listen", addr, "--data-dir", t.TempDir(), "--log-format", "json")
	rec := waitLog(t, l, done, func(s string) string {
		sc := bufio.NewScanner(strings.NewReader(s))
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"root_token"`) {
				return sc.Text()
			}
		}
		return ""
	})
	var m map[string]any
	if err := json.Unmarshal([]byte(rec), &m); err != nil {
		t.Fatalf("not JSON: %q", rec)
	}
	token, _ := m["root_token"].(string)
	if !patRE.MatchString(token) || m["root_password"] == "" || m["url"] != "http://"+addr {
		t.Fatalf("record: %v", m)
	}
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Fatalf("non-JSON output with --log-format json: %q", line)
		}
	}
	if code := apiUser(t, "http://"+addr, token); code != http.StatusOK {
		t.Fatalf("token: %d", code)
	}
}
