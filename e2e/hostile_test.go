package e2e

// Hostile-load tests: each sends one attack at the real binary and checks
// that it is refused (a precise 4xx or a closed connection), that nothing
// was written, that the server's memory stayed bounded and that a normal
// client is still served.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// capMemory puts the running server under an address-space limit (the Go
// runtime reserves ~2 GB of virtual memory at start, so the cap sits above
// that) and returns a function reading its peak resident set in MiB.
func (s *server) capMemory(t *testing.T, asBytes uint64) func() int {
	t.Helper()
	pid := s.cmd.Process.Pid
	lim := unix.Rlimit{Cur: asBytes, Max: asBytes}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil); err != nil {
		t.Logf("prlimit: %v (running without an address-space cap)", err)
	}
	return func() int { return procStatusMiB(pid, "VmHWM") }
}

// procStatusMiB reads a kB field of /proc/<pid>/status, in MiB.
func procStatusMiB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb / 1024
		}
	}
	return -1
}

// servedNormally checks that an ordinary API call still answers quickly.
func (s *server) servedNormally(t *testing.T) {
	t.Helper()
	start := time.Now()
	var v map[string]any
	if code, _ := s.call("GET", "/api/v4/version", nil, &v); code != 200 {
		t.Fatalf("normal client: GET /version = %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("normal client: GET /version took %v", d)
	}
}

// aliasBomb is the reported attack: one anchored string of size bytes
// repeated through aliases; the file stays under 1 MB.
func aliasBomb(size, aliases int) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".big: &big %s\n", strings.Repeat("x", size))
	b.WriteString("job:\n  script: echo\n  variables:\n")
	for i := 0; i < aliases; i++ {
		fmt.Fprintf(&b, "    V%d: *big\n", i)
	}
	return b.String()
}

func TestHostileYAMLAmplification(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.Env = append(s.Env, "GOMEMLIMIT=256MiB")
			s.start()
			peak := s.capMemory(t, 3<<30)
			pid := newCIProject(t, s, "bomb")
			bomb := aliasBomb(900<<10, 1500) // 0.9 MB file, 1.3 GB expanded
			if len(bomb) > 1<<20 {
				t.Fatalf("bomb is %d bytes", len(bomb))
			}

			// The lint API answers as GitLab does: valid false, the message.
			var res map[string]any
			code, _ := s.call("POST", "/api/v4/projects/"+pid+"/ci/lint", map[string]any{"content": bomb}, &res)
			if code != 200 || res["valid"] != false || fmt.Sprint(res["errors"]) != "[The parsed YAML is too big]" {
				t.Fatalf("lint: %d %v", code, res["errors"])
			}
			s.servedNormally(t)

			// A push of the same file: the pipeline fails with the YAML
			// error and no job is created.
			pushBranch(t, s, "root/bomb", "main", map[string]string{".gitlab-ci.yml": bomb})
			pl := waitPipeline(t, s, pid, "main", 60*time.Second)
			if pl["status"] != "failed" {
				t.Fatalf("pipeline: %v", pl)
			}
			if jobs := pipelineJobs(t, s, pid, pl); len(jobs) != 0 {
				t.Fatalf("jobs created from a refused config: %v", jobs)
			}
			s.servedNormally(t)
			if mb := peak(); mb > 400 {
				t.Fatalf("server peak RSS %d MiB", mb)
			}
		})
	}
}

// openIdle opens n keep-alive connections, each having made one request
// and now idle, plus n silent connections that never send a byte.
func openIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the server (or the kernel backlog) refuses: fine
		}
		conns = append(conns, c)
		if i%2 == 0 {
			fmt.Fprintf(c, "GET /-/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
		}
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !(ok && ne.Timeout())
		}
	}
}

func TestHostileIdleConnections(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		if os.Getenv("KILN_REQUIRE_SERVICES") == "1" {
			t.Fatal("prlimit (util-linux) not installed")
		}
		t.Skip("prlimit (util-linux) not installed")
	}
	// A descriptor limit of 256: the server keeps its connections a
	// quarter below it, and evicts idle ones to admit new clients.
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.Wrap = []string{"prlimit", "--nofile=256:256"}
	s.start()
	openIdle(t, s.addr, 300)
	for i := 0; i < 5; i++ {
		s.servedNormally(t)
	}
	if n := openFDs(s.cmd.Process.Pid); n > 256 {
		t.Fatalf("server has %d descriptors open", n)
	}
}

func TestHostileSlowClients(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0", "--read-header-timeout", "1s", "--body-timeout", "1s", "--idle-timeout", "1s")
	s.start()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Headers that never end.
	hdr := dial()
	fmt.Fprintf(hdr, "GET /api/v4/version HTTP/1.1\r\nHost: x\r\n")
	// A body that never arrives.
	body := dial()
	fmt.Fprintf(body, "POST /api/v4/projects HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\":", rootToken)
	// An idle keep-alive connection.
	idle := dial()
	fmt.Fprintf(idle, "GET /-/liveness HTTP/1.1\r\nHost: x\r\n\r\n")
	for name, c := range map[string]net.Conn{"slow headers": hdr, "slow body": body, "idle keep-alive": idle} {
		if !closedWithin(c, 8*time.Second) {
			t.Errorf("%s: connection still open after 8s", name)
		}
	}
	var projects []map[string]any
	if s.call("GET", "/api/v4/projects", nil, &projects); len(projects) != 0 {
		t.Fatalf("a project was written: %v", projects)
	}
	s.servedNormally(t)
}

func openFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// blockedPipeline creates a public project whose pipeline waits on a
// manual job forever (no runner needed) and returns project and pipeline ids.
func blockedPipeline(t *testing.T, s *server, path string) (string, string) {
	t.Helper()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {path}, "path": {path}, "visibility": {"public"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	pushBranch(t, s, "root/"+path, "main", map[string]string{".gitlab-ci.yml": "gate:\n  script: echo\n  when: manual\n  allow_failure: false\nafter:\n  stage: deploy\n  script: echo\n"})
	var pls []map[string]any
	waitFor(t, 20*time.Second, "pipeline", func() bool {
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines", nil, &pls)
		return len(pls) > 0 && pls[0]["status"] != "created"
	})
	return pid, jsonID(pls[0]["id"])
}

func TestHostileEventStreams(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0", "--max-streams-per-client", "20", "--event-stream-timeout", "3s")
			s.start()
			pid, plID := blockedPipeline(t, s, "pub")
			u := s.URL + "/api/v4/projects/" + pid + "/pipelines/" + plID + "/events"
			type result struct {
				code  int
				lines int
				err   error
			}
			results := make(chan result, 25)
			opened := make(chan struct{}, 25)
			start := time.Now()
			for i := 0; i < 20; i++ {
				go func() {
					resp, err := http.Get(u) // anonymous, on a public project
					opened <- struct{}{}
					if err != nil {
						results <- result{err: err}
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					results <- result{code: resp.StatusCode, lines: strings.Count(string(b), "\n"), err: err}
				}()
			}
			for i := 0; i < 20; i++ {
				<-opened
			}
			// With 20 open, the 21st is refused in GitLab's error shape.
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(fmt.Sprint(body["message"]), "429 Too Many Requests") {
				t.Fatalf("21st stream: %d %v", resp.StatusCode, body)
			}
			s.servedNormally(t)
			// Every stream ends on its own (the bound), with a last line.
			for i := 0; i < 20; i++ {
				select {
				case r := <-results:
					if r.err != nil || r.code != 200 || r.lines < 2 {
						t.Fatalf("stream: %+v", r)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("streams still open after %v", time.Since(start))
				}
			}
			// Slots are free again.
			resp, err = http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("after the streams ended: %d", resp.StatusCode)
			}
		})
	}
}

// signIn posts the web sign-in form (with its CSRF token) and returns the
// status, whether a session cookie was set, and the page.
func (s *server) signInWeb(t *testing.T, user, password string) (int, bool, string) {
	t.Helper()
	resp, err := http.Get(s.URL + "/users/sign_in")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var csrf string
	for _, c := range resp.Cookies() {
		if c.Name == "_kiln_csrf" {
			csrf = c.Value
		}
	}
	form := url.Values{"authenticity_token": {csrf}, "username": {user}, "password": {password}}
	req, _ := http.NewRequest("POST", s.URL+"/users/sign_in", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "_kiln_csrf", Value: csrf})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	session := false
	for _, c := range resp.Cookies() {
		if c.Name == "_kiln_session" && c.Value != "" {
			session = true
		}
	}
	return resp.StatusCode, session, string(b)
}

func TestHostileSignInGuessing(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	newCIProject(t, s, "app")
	// The right password works before anything happened.
	if code, ok, _ := s.signInWeb(t, "root", "rootpassword1"); code != 303 || !ok {
		t.Fatalf("first sign-in: %d session=%v", code, ok)
	}
	// 10 failures lock the account (GitLab: 10 attempts, 10 minutes) ...
	for i := 0; i < 10; i++ {
		if code, _, _ := s.signInWeb(t, "root", fmt.Sprintf("guess-%d", i)); code != 401 {
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	// ... after which even the right password fails, on the web and git.
	code, ok, page := s.signInWeb(t, "ROOT", "rootpassword1")
	if code != 401 || ok || !strings.Contains(page, "Your account is locked.") {
		t.Fatalf("locked account signed in: %d session=%v", code, ok)
	}
	if out, err := gitErr(t.TempDir(), "ls-remote", strings.Replace(s.authURL("root/app"), rootToken, "rootpassword1", 1)); err == nil {
		t.Fatalf("git with a locked account's password worked: %s", out)
	}
	// Names that do not exist lock the same way (nothing to enumerate).
	for i := 0; i < 10; i++ {
		s.signInWeb(t, "nobody", "x")
	}
	if _, _, page := s.signInWeb(t, "nobody", "x"); !strings.Contains(page, "Your account is locked.") {
		t.Fatalf("unknown name not locked like a real one")
	}
	// The address has now used up its failures: refused before any
	// password work, with Retry-After.
	var last int
	for i := 0; i < 15 && last != 429; i++ {
		last, _, _ = s.signInWeb(t, fmt.Sprintf("user%d", i), "x")
	}
	if last != 429 {
		t.Fatalf("address never throttled: %d", last)
	}
	// Token users are unaffected.
	s.servedNormally(t)
}

func TestHostileDeliveriesWriteChannel(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "secret") // private
			u := s.URL + "/api/v4/projects/" + pid + "/trigger/pipeline"
			post := func(form url.Values, hdr map[string]string) (int, string) {
				req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			// Anonymous calls that are refused for reasons other than a bad
			// token (no token, loop guard) ...
			var last int
			for i := 0; i < 80 && last != 429; i++ {
				switch i % 2 {
				case 0:
					last, _ = post(url.Values{"ref": {"main"}}, nil)
				case 1:
					last, _ = post(url.Values{"ref": {"main"}, "token": {"x"}}, map[string]string{"X-Gitlab-Event": "Pipeline Hook"})
				}
			}
			// ... are rate-limited per address ...
			if last != 429 {
				t.Fatalf("refusals never rate-limited: %d", last)
			}
			code, body := post(url.Values{"ref": {"main"}}, nil)
			if code != 429 || !strings.Contains(body, `"message":"429 Too Many Requests`) {
				t.Fatalf("blocked: %d %s", code, body)
			}
			// ... and none of them reached the private project's log.
			var ds []map[string]any
			if code, _ := s.call("GET", "/api/v4/projects/"+pid+"/triggers/deliveries", nil, &ds); code != 200 || len(ds) != 0 {
				t.Fatalf("deliveries written by anonymous callers: %d %v", code, ds)
			}
			s.servedNormally(t)
		})
	}
}

// webSession signs in through the form and returns a client carrying the
// session cookie.
func (s *server) webSession(t *testing.T, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.URL + "/users/sign_in")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`).FindStringSubmatch(string(page))
	if tok == nil {
		t.Fatal("no sign-in token")
	}
	resp, err = c.PostForm(s.URL+"/users/sign_in", url.Values{"authenticity_token": {tok[1]}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c
}

// formToken reads the CSRF token of a page.
func formToken(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`).FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no form token on %s (%d)", u, resp.StatusCode)
	}
	return m[1]
}

func TestHostileSmallerItems(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.start()

	t.Run("project path with capitals", func(t *testing.T) {
		var proj map[string]any
		if code, _ := s.call("POST", "/api/v4/projects", url.Values{"path": {"MyApp"}}, &proj); code != 201 {
			t.Fatalf("create: %d %v", code, proj)
		}
		if proj["path"] != "MyApp" {
			t.Fatalf("path not kept for display: %v", proj["path"])
		}
		pushBranch(t, s, "root/MyApp", "main", map[string]string{".gitlab-ci.yml": "job: {script: echo}\n"})
		if out, err := gitErr(t.TempDir(), "clone", "-q", s.authURL("root/myapp"), "c"); err != nil {
			t.Fatalf("clone by lower-case path: %v %s", err, out)
		}
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/root%2Fmyapp/pipelines", nil, &pls)
		if len(pls) != 1 {
			t.Fatalf("pipelines: %v", pls)
		}
		var dup map[string]any
		if code, _ := s.call("POST", "/api/v4/projects", url.Values{"path": {"myapp"}}, &dup); code != 400 {
			t.Fatalf("same path, other case: %d %v", code, dup)
		}
	})

	t.Run("web new project uses the API's validation", func(t *testing.T) {
		c := s.webSession(t, "root", "rootpassword1")
		for name, form := range map[string]url.Values{
			"bad default branch": {"name": {"web1"}, "path": {"web1"}, "default_branch": {"a..b"}},
			"control character":  {"name": {"we\x01b"}, "path": {"web2"}},
			"reserved name":      {"name": {"x"}, "path": {"blob"}},
			"bad description":    {"name": {"web3"}, "path": {"web3"}, "description": {"a\x07b"}},
		} {
			form.Set("authenticity_token", formToken(t, c, s.URL+"/projects/new"))
			resp, err := c.PostForm(s.URL+"/projects/new", form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 422 {
				t.Errorf("%s: %d", name, resp.StatusCode)
			}
		}
		var ps []map[string]any
		s.call("GET", "/api/v4/projects?search=web", nil, &ps)
		for _, p := range ps {
			if strings.HasPrefix(fmt.Sprint(p["path"]), "web") || p["path"] == "blob" {
				t.Fatalf("project created: %v", p["path"])
			}
		}
	})

	t.Run("built-in runner hides host and data dir", func(t *testing.T) {
		var all []map[string]any
		waitFor(t, 20*time.Second, "built-in runner", func() bool {
			s.call("GET", "/api/v4/runners/all", nil, &all)
			return len(all) > 0
		})
		_, tok := s.newUser("viewer")
		host, _ := os.Hostname()
		for _, who := range []string{rootToken, tok} {
			req, _ := http.NewRequest("GET", s.URL+"/api/v4/runners/"+jsonID(all[0]["id"]), nil)
			req.Header.Set("PRIVATE-TOKEN", who)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), s.DataDir) || (host != "" && strings.Contains(string(b), host)) {
				t.Fatalf("runner shows host or data dir: %s", b)
			}
		}
	})

	t.Run("nosniff on API JSON", func(t *testing.T) {
		for _, p := range []string{"/api/v4/version", "/api/v4/projects/999999"} {
			_, hdr := s.call("GET", p, nil, nil)
			if hdr.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", p)
			}
		}
	})

	t.Run("annotated tag creates a pipeline", func(t *testing.T) {
		pid := newCIProject(t, s, "tagged")
		work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "job: {script: echo}\n"})
		git(t, work, "push", "-q", s.authURL("root/tagged"), "main")
		git(t, work, "tag", "-a", "v1.0", "-m", "release 1.0")
		git(t, work, "push", "-q", s.authURL("root/tagged"), "v1.0")
		commit := strings.TrimSpace(git(t, work, "rev-parse", "v1.0^{commit}"))
		var pls []map[string]any
		waitFor(t, 20*time.Second, "tag pipeline", func() bool {
			s.call("GET", "/api/v4/projects/"+pid+"/pipelines?ref=v1.0", nil, &pls)
			return len(pls) == 1
		})
		if pls[0]["sha"] != commit {
			t.Fatalf("tag pipeline: %v (want sha %s)", pls[0], commit)
		}
	})
}

func TestHostileScheduleLimit(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			pid := newCIProject(t, s, "sched")
			pushBranch(t, s, "root/sched", "main", map[string]string{".gitlab-ci.yml": "job: {script: echo}\n"})
			base := "/api/v4/projects/" + pid + "/pipeline_schedules"
			for i := 0; i < 50; i++ {
				if code, _ := s.call("POST", base, url.Values{"description": {"s"}, "ref": {"main"}, "cron": {"* * * * *"}}, nil); code != 201 {
					t.Fatalf("schedule %d: %d", i, code)
				}
			}
			var body map[string]any
			code, _ := s.call("POST", base, url.Values{"description": {"s"}, "ref": {"main"}, "cron": {"* * * * *"}}, &body)
			if code != 400 || fmt.Sprint(body) != "map[message:map[base:[Maximum number of ci pipeline schedules (50) exceeded]]]" {
				t.Fatalf("51st: %d %v", code, body)
			}
			var list []map[string]any
			s.call("GET", base+"?per_page=100", nil, &list)
			if len(list) != 50 {
				t.Fatalf("%d schedules stored", len(list))
			}
		})
	}
}
