package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is an S3-compatible server for tests: SeaweedFS started by
// SeaweedFS or S3, or the one KILN_TEST_S3_ENDPOINT names.
type S3Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:<port>.
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string

	weed  string   // binary; "" for an external server
	args  []string // weed server's arguments
	dir   string
	log   string
	cmd   *exec.Cmd
	exit  chan struct{}
	users int
}

// Test credentials of the SeaweedFS this package starts (an admin identity
// in its -s3.config).
const (
	weedAccessKey = "kiln-test-access"
	weedSecretKey = "kiln-test-secret-key"
)

// WeedBinary is the SeaweedFS binary the tests start: $KILN_WEED, else
// `weed` on PATH; "" when neither exists.
func WeedBinary() string {
	if p := os.Getenv("KILN_WEED"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	return ""
}

// S3 returns an S3 server for the test: KILN_TEST_S3_ENDPOINT (with
// KILN_TEST_S3_ACCESS_KEY, KILN_TEST_S3_SECRET_KEY, KILN_TEST_S3_REGION)
// when set, else a SeaweedFS of the test's own (see SeaweedFS). Without
// either it skips, or fails under KILN_REQUIRE_SERVICES=1. Use NewBucket
// for a bucket of the test's own.
func S3(t testing.TB) *S3Server {
	t.Helper()
	if ep := os.Getenv("KILN_TEST_S3_ENDPOINT"); ep != "" {
		s := &S3Server{
			Endpoint: ep, AccessKey: os.Getenv("KILN_TEST_S3_ACCESS_KEY"),
			SecretKey: os.Getenv("KILN_TEST_S3_SECRET_KEY"), Region: os.Getenv("KILN_TEST_S3_REGION"),
		}
		if s.Region == "" {
			s.Region = "us-east-1"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.Client(t).ListBuckets(ctx); err != nil {
			missing(t, "the S3 server at KILN_TEST_S3_ENDPOINT="+ep+" ("+err.Error()+")")
		}
		return s
	}
	return SeaweedFS(t)
}

// SeaweedFS starts a SeaweedFS server (master, volume, filer and S3
// gateway on free loopback ports, data in a temporary directory) for the
// test and stops it at cleanup; Stop and Start stop and restart it. The
// binary is $KILN_WEED or `weed` on PATH (bash .ci/run builds it); without
// it the test skips, or fails under KILN_REQUIRE_SERVICES=1.
func SeaweedFS(t testing.TB) *S3Server {
	t.Helper()
	bin := WeedBinary()
	if bin == "" {
		missing(t, "SeaweedFS (a `weed` binary on PATH or at $KILN_WEED; bash .ci/run builds one)")
	}
	s, err := NewSeaweedFS(bin, t.TempDir(), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			s.dumpLog(t)
		}
	})
	s.Start(t)
	return s
}

// NewSeaweedFS prepares, without starting it (Launch or Start does), a
// SeaweedFS server of binary bin with its configuration and data under
// dir, on free loopback ports, with volumes of volumeSizeLimitMB. It
// serves the tests (SeaweedFS) and the benchmarks (bench/kilnbench).
func NewSeaweedFS(bin, dir string, volumeSizeLimitMB int) (*S3Server, error) {
	cfg, _ := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "kiln-test",
		"credentials": []any{map[string]string{"accessKey": weedAccessKey, "secretKey": weedSecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	cfgPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	return &S3Server{
		Endpoint: "http://127.0.0.1:" + p(6), AccessKey: weedAccessKey, SecretKey: weedSecretKey, Region: "us-east-1",
		weed: bin, dir: dir, log: filepath.Join(dir, "weed.log"),
		args: []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
			"-master.port=" + p(0), "-master.port.grpc=" + p(1),
			"-volume.port=" + p(2), "-volume.port.grpc=" + p(3), "-volume.max=0", "-volume.preStopSeconds=0",
			"-master.volumeSizeLimitMB=" + strconv.Itoa(volumeSizeLimitMB),
			"-filer", "-filer.port=" + p(4), "-filer.port.grpc=" + p(5),
			"-s3", "-s3.port=" + p(6), "-s3.port.grpc=" + p(7), "-s3.port.iceberg=0", "-s3.port.lance=0",
			"-s3.config=" + cfgPath},
	}, nil
}

// Start (re)starts a SeaweedFS stopped by Stop and waits until it stores
// objects.
func (s *S3Server) Start(t testing.TB) {
	t.Helper()
	if s.weed == "" {
		t.Fatal("Start: the S3 server is not one this test started")
	}
	if err := s.Launch(); err != nil {
		s.dumpLog(t)
		t.Fatal(err)
	}
}

// Launch starts the server prepared by NewSeaweedFS (or stopped by Stop or
// Close), if it is not running, and waits until it stores objects; its
// output goes to weed.log in its directory.
func (s *S3Server) Launch() error {
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.weed, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.weed, err)
	}
	logf.Close()
	exit := make(chan struct{})
	s.cmd, s.exit = cmd, exit
	// The waiter reaps the process; stop waits for it.
	go func() { cmd.Wait(); close(exit) }()
	if err := s.waitReady(90 * time.Second); err != nil {
		return fmt.Errorf("SeaweedFS did not become ready (log: %s): %w", s.log, err)
	}
	return nil
}

// Stop stops the SeaweedFS (its data stays for Start).
func (s *S3Server) Stop(t testing.TB) {
	t.Helper()
	if s.weed == "" {
		t.Fatal("Stop: the S3 server is not one this test started")
	}
	s.stop()
}

// Close stops a server started by Launch (its data stays).
func (s *S3Server) Close() { s.stop() }

func (s *S3Server) stop() {
	if s.cmd == nil {
		return
	}
	// SIGKILL at once: weed ignores SIGTERM for its whole 15 s grace here,
	// and what it wrote is in its files either way (a restart by Start
	// finds it; TestObjectStoreOutage and TestObjectStoreReadiness
	// restart one); it ends a process frozen by Pause too.
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exit
	s.cmd = nil
}

func (s *S3Server) dumpLog(t testing.TB) {
	b, _ := os.ReadFile(s.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("SeaweedFS log (tail):\n%s", b)
}

// waitReady waits until a probe object can be written and read: the S3
// gateway answers only once master, volume and filer are up, and writes
// work only once the volume server has registered.
func (s *S3Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c, err := s.NewClient()
	if err != nil {
		return err
	}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.exit:
			return fmt.Errorf("weed exited")
		default:
		}
		last = func() error {
			// A fresh master defers its first volume allocation by
			// seconds: one patient attempt, not several cut short.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ok, err := c.BucketExists(ctx, "kiln-probe")
			if err != nil {
				return err
			}
			if !ok {
				if err := c.MakeBucket(ctx, "kiln-probe", minio.MakeBucketOptions{Region: s.Region}); err != nil {
					return err
				}
			}
			_, err = c.PutObject(ctx, "kiln-probe", "probe", bytes.NewReader([]byte("ok")), 2, minio.PutObjectOptions{})
			return err
		}()
		if last == nil {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("after %s: %v", limit, last)
}

// NewClient is a client of the server with its credentials.
func (s *S3Server) NewClient() (*minio.Client, error) {
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: u.Scheme == "https",
		Region: s.Region, BucketLookup: minio.BucketLookupPath,
	})
}

// Client is a client of the server with the test credentials.
func (s *S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket of the test's own (names are unique).
func (s *S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := strings.ReplaceAll(UniqueName("kiln-test"), "_", "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

// ObjectNames lists a bucket's object names under prefix.
func (s *S3Server) ObjectNames(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for o := range s.Client(t).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing %s/%s: %v", bucket, prefix, o.Err)
		}
		out = append(out, o.Key)
	}
	return out
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		// SeaweedFS derives gRPC ports as port+10000 when unset; stay
		// clear of the range where that would overflow.
		if port > 55000 {
			continue
		}
		out = append(out, port)
	}
	return out, nil
}
