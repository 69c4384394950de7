package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	rclient "github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/testenv"
)

// weedDefault is where bash .ci/run builds SeaweedFS (KILN_WEED overrides).
const weedDefault = ".cache/kiln-weed/v0.0.0-20261109003541-7506e5f91cd6/weed"

// startWeed runs SeaweedFS as the tests do (internal/testenv), with its
// data under work and 1 GiB volumes, and waits until it stores objects.
func startWeed(work string) *testenv.S3Server {
	bin := testenv.WeedBinary()
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, weedDefault)
	}
	if _, err := os.Stat(bin); err != nil {
		check(fmt.Errorf("SeaweedFS binary (KILN_WEED, weed on PATH or ~/%s): %v", weedDefault, err))
	}
	dir, err := os.MkdirTemp(work, "weed")
	check(err)
	w, err := testenv.NewSeaweedFS(bin, dir, 1024)
	check(err)
	if err := w.Launch(); err != nil {
		w.Close()
		check(err)
	}
	return w
}

// weedBucket creates the bucket if needed and returns its name.
func weedBucket(w *testenv.S3Server, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.NewClient()
	check(err)
	if ok, err := c.BucketExists(ctx, name); err == nil && !ok {
		c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: w.Region})
	}
	return name
}

// storeSetup is one object store under test: its servers (with two
// replicas on PostgreSQL, the second only downloads) and a runner.
type storeSetup struct {
	name    string
	ks      []*kiln
	pid     int64
	tok     string
	runner  *rclient.Client
	rss     atomic.Int64 // max server RSS (KiB) seen while sampling
	direct  string       // what direct_download=true answers
	results map[string][]float64
}

const artifactCI = "bench:\n  script: \"true\"\n"

func newStoreSetup(bin, work, db, pg, name string, replicas int, args ...string) *storeSetup {
	dsn := ""
	if db == "postgres" {
		dsn = freshSchema(pg)
	}
	var ks []*kiln
	if replicas > 1 {
		ks = startReplicas(bin, work, dsn, replicas, args...)
	} else {
		k, err := startKiln(bin, work, dsn, args...)
		check(err)
		ks = []*kiln{k}
	}
	s := &storeSetup{name: name, ks: ks, results: map[string][]float64{}}
	var err error
	s.pid, err = ks[0].project(work, fmt.Sprintf("art%d", time.Now().UnixNano()), artifactCI)
	check(err)
	s.tok, err = ks[0].triggerToken(s.pid)
	check(err)
	var r struct{ Token string }
	code, err := ks[0].api("POST", "/api/v4/user/runners", url.Values{"runner_type": {"instance_type"}, "description": {"artifacts"}, "run_untagged": {"true"}}, &r)
	if err != nil || code != 201 {
		check(fmt.Errorf("create runner: %d %v", code, err))
	}
	s.runner, err = rclient.New(rclient.Options{URL: ks[0].URL, Token: r.Token})
	check(err)
	return s
}

// job triggers a one-job pipeline and takes its job as the runner does
// (request, then state=running), returning the job's id and token.
func (s *storeSetup) job() (int64, string) {
	code, _, err := s.ks[0].trigger(s.pid, s.tok)
	if err != nil || code != 201 {
		check(fmt.Errorf("trigger: %d %v", code, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := s.runner.RequestJob(ctx)
	check(err)
	if j == nil {
		check(fmt.Errorf("no job for the runner"))
	}
	_, err = s.runner.UpdateJob(ctx, j.ID, j.Token, rclient.UpdateJobRequest{Token: j.Token, State: "running"})
	check(err)
	return j.ID, j.Token
}

// sampleRSS records the largest RSS of the setup's servers until stop is closed.
func (s *storeSetup) sampleRSS(stop <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		for _, k := range s.ks {
			if v := int64(k.rssKiB()); v > s.rss.Load() {
				s.rss.Store(v)
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func mbps(n int, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// download GETs a job's archive with its job token (no direct_download:
// the server streams it from its store) and checks the size.
func download(k *kiln, id int64, tok string, want int) time.Duration {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v4/jobs/%d/artifacts", k.URL, id), nil)
	req.Header.Set("JOB-TOKEN", tok)
	t0 := time.Now()
	resp, err := client0.Do(req)
	check(err)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	check(err)
	if resp.StatusCode != 200 || int(n) != want {
		check(fmt.Errorf("download job %d: %d, %d bytes", id, resp.StatusCode, n))
	}
	return d
}

// directAnswer says how the server answers direct_download=true: a
// redirect (to where) or the archive itself.
func directAnswer(k *kiln, id int64, tok string) string {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v4/jobs/%d/artifacts?direct_download=true", k.URL, id), nil)
	req.Header.Set("JOB-TOKEN", tok)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	check(err)
	resp.Body.Close()
	if loc, err := resp.Location(); err == nil {
		return fmt.Sprintf("%d to %s://%s (presigned: %v)", resp.StatusCode, loc.Scheme, loc.Host, loc.Query().Get("X-Amz-Signature") != "")
	}
	return fmt.Sprintf("%d from the server", resp.StatusCode)
}

var client0 = &http.Client{Timeout: 10 * time.Minute}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// objectstore measures artifacts upload and download MB/s through the
// server's runner API with the data dir (disk) and with S3 (SeaweedFS on
// this machine), alternating the stores in each round so that their ratio
// holds under the same load. The upload is kiln runner's own client
// (streamed multipart, no Content-Length, so S3 gets a multipart upload of
// 16 MiB parts); downloads are a plain GET the server streams from its
// store, and the runner's direct_download=true GET (S3: a 302 to a
// presigned URL, the bytes come from SeaweedFS). On PostgreSQL the S3
// setup has two replicas with separate data dirs and also downloads
// through the replica that did not receive the upload. A reference row
// puts and gets the same bytes straight into SeaweedFS with minio-go.
func objectstore(bin, work, db, pg string, mb, runs int) {
	size := mb << 20
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data) // incompressible
	w := startWeed(work)
	defer w.Close()
	bucket := weedBucket(w, "kilnbench")
	s3args := []string{"--object-store", "s3", "--s3-endpoint", w.Endpoint, "--s3-bucket", bucket, "--s3-access-key", w.AccessKey}
	os.Setenv("KILN_S3_SECRET_KEY", w.SecretKey) // inherited by the servers
	common := []string{"--builtin-runners", "0", "--max-artifacts-size", strconv.Itoa(2*size + 1<<20)}
	replicas := 1
	if db == "postgres" {
		replicas = 2
	}
	setups := []*storeSetup{
		newStoreSetup(bin, work, db, pg, "disk (data dir)", 1, common...),
		newStoreSetup(bin, work, db, pg, "S3 (SeaweedFS)", replicas, append(append([]string{}, common...), s3args...)...),
	}
	defer func() {
		for _, s := range setups {
			for _, k := range s.ks {
				k.stop()
			}
		}
	}()
	fmt.Printf("\n## Object store: artifacts archive of %d MiB (incompressible) through the runner API, %s, %d rounds (load average %s)\n\n", mb, db, runs, loadAvg())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range setups {
		wg.Go(func() { s.sampleRSS(stop) })
	}
	mc, err := w.NewClient()
	check(err)
	raw := map[string][]float64{}
	for round := 0; round <= runs; round++ { // round 0 warms up
		for _, s := range setups {
			id, tok := s.job()
			t0 := time.Now()
			err := s.runner.UploadArtifacts(context.Background(), id, tok, bytes.NewReader(data), rclient.UploadOptions{ArtifactFormat: "zip", ArtifactType: "archive"})
			up := time.Since(t0)
			check(err)
			srv := download(s.ks[0], id, tok, size)
			cw := &countWriter{}
			t0 = time.Now()
			check(s.runner.DownloadArtifacts(context.Background(), id, tok, cw))
			direct := time.Since(t0)
			if cw.n != size {
				check(fmt.Errorf("direct download: %d bytes", cw.n))
			}
			var other time.Duration
			if len(s.ks) > 1 {
				other = download(s.ks[1], id, tok, size)
			}
			if round == 0 {
				s.direct = directAnswer(s.ks[0], id, tok)
				continue
			}
			s.results["upload"] = append(s.results["upload"], mbps(size, up))
			s.results["download"] = append(s.results["download"], mbps(size, srv))
			s.results["direct"] = append(s.results["direct"], mbps(size, direct))
			if other > 0 {
				s.results["other"] = append(s.results["other"], mbps(size, other))
			}
		}
		// The same bytes straight into and out of the bucket.
		name := fmt.Sprintf("raw/%d", round)
		t0 := time.Now()
		_, err := mc.PutObject(context.Background(), bucket, name, bytes.NewReader(data), -1, minio.PutObjectOptions{PartSize: 16 << 20})
		check(err)
		up := time.Since(t0)
		t0 = time.Now()
		o, err := mc.GetObject(context.Background(), bucket, name, minio.GetObjectOptions{})
		check(err)
		n, err := io.Copy(io.Discard, o)
		check(err)
		o.Close()
		if int(n) != size {
			check(fmt.Errorf("raw get: %d bytes", n))
		}
		if round > 0 {
			raw["upload"] = append(raw["upload"], mbps(size, up))
			raw["download"] = append(raw["download"], mbps(size, time.Since(t0)))
		}
	}
	close(stop)
	wg.Wait()
	row := func(xs []float64) string {
		if len(xs) == 0 {
			return "—"
		}
		lo, hi := xs[0], xs[0]
		for _, x := range xs {
			lo, hi = min(lo, x), max(hi, x)
		}
		return fmt.Sprintf("%.0f (%.0f–%.0f)", median(xs), lo, hi)
	}
	fmt.Println("| store | upload (runner client, chunked multipart) | download through the server | download, `direct_download=true` | download through the other replica | server RSS max |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, s := range setups {
		fmt.Printf("| %s | %s | %s | %s | %s | %.1f MB |\n", s.name, row(s.results["upload"]), row(s.results["download"]), row(s.results["direct"]), row(s.results["other"]), float64(s.rss.Load())/1024)
	}
	fmt.Printf("| SeaweedFS directly (minio-go, 16 MiB parts) | %s | — | %s | — | — |\n", row(raw["upload"]), row(raw["download"]))
	fmt.Printf("\nMB/s, median (min–max) of %d rounds; load average after: %s\n", runs, loadAvg())
	for _, s := range setups {
		fmt.Printf("%s: direct_download=true answered %s\n", s.name, s.direct)
	}
}
