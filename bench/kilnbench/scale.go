package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// seedScale writes nPipelines finished pipelines with jobsPer jobs each
// into project pid of a stopped server's database, straight through the
// store package: two INSERT … SELECT statements generate the rows inside
// one transaction, so 600,000 rows take seconds, not minutes.
func seedScale(dsn string, pid, userID int64, sha string, nPipelines, jobsPer int) (time.Duration, error) {
	ctx := context.Background()
	t0 := time.Now()
	st, err := store.Open(ctx, dsn, nil, store.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	// Job templates: name, stage, stage index.
	stages := []string{"lint", "test", "build", "package", "deploy", "docs", "e2e", "release"}
	var tmpl []string
	for i := 0; i < jobsPer; i++ {
		tmpl = append(tmpl, fmt.Sprintf("SELECT '%s %d' AS name, '%s' AS stage, %d AS idx", stages[i%len(stages)], i, stages[i%len(stages)], i))
	}
	base := time.Now().Add(-time.Duration(nPipelines) * time.Minute).UnixMicro()
	err = st.Write(ctx, func(tx *store.Tx) error {
		var iid0 int64
		if err := tx.QueryRow(ctx, `SELECT pipeline_iid FROM projects WHERE id = ?`, pid).Scan(&iid0); err != nil {
			return err
		}
		var id0 int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM pipelines`).Scan(&id0); err != nil {
			return err
		}
		// One pipeline a minute; every 10th failed, every 7th from the API.
		if _, err := tx.Exec(ctx, `INSERT INTO pipelines (project_id, iid, ref, sha, source, status, user_id, commit_title,
				created_at, updated_at, started_at, finished_at, committed_at, duration, queued_duration)
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			SELECT ?, ? + i, 'main', ?, CASE WHEN i % 7 = 0 THEN 'api' ELSE 'push' END,
				CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END, ?, 'bench',
				? + i * 60000000, ? + i * 60000000 + 30000000, ? + i * 60000000 + 1000000, ? + i * 60000000 + 30000000, ?, 29, 1
			FROM n`, nPipelines, pid, iid0, sha, userID, base, base, base, base, base); err != nil {
			return fmt.Errorf("seed pipelines: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, status, spec, user_id, trace_size,
				created_at, queued_at, started_at, finished_at)
			SELECT p.id, p.project_id, s.name, s.stage, s.idx,
				CASE WHEN p.status = 'failed' AND s.idx = ? THEN 'failed' ELSE 'success' END, '{}', p.user_id, 1234,
				p.created_at, p.created_at, p.started_at + s.idx * 1000000, p.started_at + s.idx * 1000000 + 900000
			FROM pipelines p CROSS JOIN (`+strings.Join(tmpl, " UNION ALL ")+`) s
			WHERE p.project_id = ? AND p.id > ?
			ORDER BY p.id, s.idx`, jobsPer-1, pid, id0); err != nil {
			return fmt.Errorf("seed jobs: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE projects SET pipeline_iid = pipeline_iid + ? WHERE id = ?`, nPipelines, pid)
		return err
	})
	return time.Since(t0), err
}

// uiSession signs root in to the web UI and returns a client holding the
// session cookie.
func uiSession(k *kiln) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: client.Transport, Timeout: 60 * time.Second}
	resp, err := c.Get(k.URL + "/users/sign_in")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="authenticity_token" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("sign-in form has no authenticity_token")
	}
	resp, err = c.PostForm(k.URL+"/users/sign_in", url.Values{"username": {"root"}, "password": {rootPassword}, "authenticity_token": {string(m[1])}})
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	u, _ := url.Parse(k.URL)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "_kiln_session" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("sign-in failed: %d", resp.StatusCode)
}

// timeGET requests path n times and returns sorted latencies and the last
// response's status and X-Total header.
func timeGET(c *http.Client, base, path string, n int, token bool) ([]time.Duration, int, string) {
	var lats []time.Duration
	code, total := 0, ""
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token {
			req.Header.Set("PRIVATE-TOKEN", rootToken)
		}
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			check(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lats = append(lats, time.Since(t0))
		code, total = resp.StatusCode, resp.Header.Get("X-Total")
	}
	sortDur(lats)
	return lats, code, total
}

// scaleSide is one server of the scale comparison.
type scaleSide struct {
	k      *kiln
	pid    int64
	tok    string
	plID   int64 // a pipeline in the middle of the list
	ui     *http.Client
	debug  string
	name   string
	npipes int
}

func newScaleSide(bin, work, db, dsn, name string, nPipelines, jobsPer int) *scaleSide {
	debug := freePort()
	args := []string{"--builtin-runners", "0", "--debug-listen", debug}
	dataDir, err := os.MkdirTemp(work, "data")
	check(err)
	k, err := startKilnIn(bin, work, dataDir, dsn, args...)
	check(err)
	s := &scaleSide{k: k, debug: debug, name: name, npipes: nPipelines}
	s.pid, err = k.project(work, "scale", seedCI)
	check(err)
	s.tok, err = k.triggerToken(s.pid)
	check(err)
	// One real pipeline gives the commit SHA the seeded ones point at.
	_, plID, err := k.trigger(s.pid, s.tok)
	check(err)
	var pl struct{ SHA string }
	k.api("GET", fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", s.pid, plID), nil, &pl)
	var me struct{ ID int64 }
	k.api("GET", "/api/v4/user", nil, &me)
	s.plID = plID
	if nPipelines > 0 {
		k.stop()
		storeDSN := dsn
		if db == "sqlite" {
			storeDSN = filepath.Join(dataDir, "kiln.db")
		}
		took, err := seedScale(storeDSN, s.pid, me.ID, pl.SHA, nPipelines, jobsPer)
		check(err)
		fmt.Printf("Seeded %d pipelines and %d jobs in %.1f s.\n", nPipelines, nPipelines*jobsPer, took.Seconds())
		k, err = startKilnIn(bin, work, dataDir, dsn, args...)
		check(err)
		s.k = k
		s.plID = plID + int64(nPipelines/2)
	}
	s.ui, err = uiSession(k)
	check(err)
	return s
}

func scale(bin, work, db, dsn string, nPipelines, jobsPer, n int, d time.Duration, runs int) {
	fmt.Printf("\n## Scenario 5: scale of data (%s, %d pipelines and %d jobs in one project vs an empty database)\n\n", db, nPipelines, nPipelines*jobsPer)
	small := newScaleSide(bin, work, db, dsn, "empty", 0, jobsPer)
	defer small.k.stop()
	bigDSN := ""
	if db == "postgres" {
		bigDSN = freshSchema(strings.SplitN(dsn, "&search_path", 2)[0])
	}
	big := newScaleSide(bin, work, db, bigDSN, "big", nPipelines, jobsPer)
	defer big.k.stop()

	deepP := max(nPipelines/20*4/5, 1) // 80 % down the pipeline list
	deepJ := max(nPipelines*jobsPer/20*4/5, 1)
	type ep struct {
		what, path string
		ui         bool
	}
	eps := func(s *scaleSide) []ep {
		p := fmt.Sprintf("/api/v4/projects/%d", s.pid)
		return []ep{
			{"API pipelines, page 1", p + "/pipelines", false},
			{fmt.Sprintf("API pipelines, page %d", deepP), fmt.Sprintf("%s/pipelines?page=%d", p, deepP), false},
			{"API jobs, page 1", p + "/jobs", false},
			{fmt.Sprintf("API jobs, page %d", deepJ), fmt.Sprintf("%s/jobs?page=%d", p, deepJ), false},
			// The same depth with GitLab's keyset pagination (cursor = the
			// id the page starts below; seeded ids are dense).
			{fmt.Sprintf("API jobs, keyset at the depth of page %d", deepJ), fmt.Sprintf("%s/jobs?pagination=keyset&cursor=%s", p,
				base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("id_before:%d", max(nPipelines*jobsPer-deepJ*20, 1))))), false},
			{"API pipeline's jobs", fmt.Sprintf("%s/pipelines/%d/jobs", p, s.plID), false},
			{"UI pipelines, page 1", "/root/scale/-/pipelines", true},
			{fmt.Sprintf("UI pipelines, page %d", deepP), fmt.Sprintf("/root/scale/-/pipelines?page=%d", deepP), true},
			{"UI jobs, page 1", "/root/scale/-/jobs", true},
			{fmt.Sprintf("UI jobs, page %d", deepJ), fmt.Sprintf("/root/scale/-/jobs?page=%d", deepJ), true},
		}
	}
	profiled := make(chan struct{})
	if profileTo != "" {
		go func() { saveProfile(big.debug, 10*time.Second, profileTo+".scale-reads."+db); close(profiled) }()
	} else {
		close(profiled)
	}
	fmt.Println("| request (20 per page) | empty DB p50 | big DB p50 | big DB p90 | big DB X-Total | target |")
	fmt.Println("|---|---:|---:|---:|---:|---|")
	se, be := eps(small), eps(big)
	for i := range be {
		get := func(s *scaleSide, e ep) ([]time.Duration, int, string) {
			c := client
			if e.ui {
				c = s.ui
			}
			timeGET(c, s.k.URL, e.path, 2, !e.ui) // warm
			return timeGET(c, s.k.URL, e.path, n, !e.ui)
		}
		sl, _, _ := get(small, se[i])
		bl, code, total := get(big, be[i])
		if total == "" {
			total = "—"
		}
		st := ms(pct(bl, 50))
		if code != 200 {
			st += fmt.Sprintf(" (HTTP %d)", code)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | p50 ≤ 20 ms |\n", be[i].what, ms(pct(sl, 50)), st, ms(pct(bl, 90)), total)
	}

	<-profiled
	// Trigger throughput, alternating between the two servers so that
	// machine noise hits both alike.
	conc := 32
	fmt.Printf("\nTrigger throughput (%d clients, %s steps, alternating, median of %d):\n\n", conc, d, runs)
	load(small.k, small.pid, small.tok, 4, time.Second)
	load(big.k, big.pid, big.tok, 4, time.Second)
	var re, rb []float64
	for r := 0; r < runs; r++ {
		x, _, _ := load(small.k, small.pid, small.tok, conc, d)
		re = append(re, x)
		if profileTo != "" && r == 0 {
			go saveProfile(big.debug, d, profileTo+".scale-trigger."+db)
		}
		y, _, _ := load(big.k, big.pid, big.tok, conc, d)
		rb = append(rb, y)
	}
	me, mb := median(re), median(rb)
	fmt.Println("| database | pipelines/s | target |")
	fmt.Println("|---|---:|---|")
	fmt.Printf("| empty | %.0f | |\n", me)
	fmt.Printf("| %d pipelines / %d jobs | %.0f (%.0f %% of empty) | ≥ 80 %% of empty |\n", nPipelines, nPipelines*jobsPer, mb, mb/me*100)
}
