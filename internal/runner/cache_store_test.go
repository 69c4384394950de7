package runner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/runner/client"
)

// TestAgentSharedCacheStore: two runners with separate cache dirs and one
// shared Cache store: what the first saves the second restores (by the
// key the server gave, protected suffix and all), and nothing is kept in
// either cache dir. A store that stalls costs a warning after
// CacheTimeout, never a hung job.
func TestAgentSharedCacheStore(t *testing.T) {
	fs := newFakeServer(t)
	shared, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	key := "deps-protected"
	j1 := fs.newJob(140, "mkdir -p vendor && echo from-runner-a > vendor/lib.txt")
	j1.Cache = []client.Cache{{Key: key, Paths: []string{"vendor/"}, Policy: "pull-push"}}
	fs.addJob(j1)
	a := startRunner(t, fs, func(c *Config) { c.CacheDir = dirA; c.Cache = shared })
	final, trace := fs.waitFinal(t, 140, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "Uploaded cache to the shared cache") {
		t.Fatalf("first job %+v\n%s", final, trace)
	}
	a.cancel()
	a.r.Abort()
	a.done <- <-a.done // stopped (and the cleanup still sees it stop)
	if _, err := shared.Stat(context.Background(), "cache/group/proj/"+key+"/cache.zip"); err != nil {
		t.Fatalf("cache object: %v", err)
	}
	j2 := fs.newJob(141, "cat vendor/lib.txt")
	j2.Variables[len(j2.Variables)-1].Value = "empty"
	j2.Cache = []client.Cache{{Key: key, Paths: []string{"vendor/"}, Policy: "pull"}}
	fs.addJob(j2)
	startRunner(t, fs, func(c *Config) { c.CacheDir = dirB; c.Cache = shared })
	final, trace = fs.waitFinal(t, 141, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "from-runner-a\n") {
		t.Fatalf("second runner did not restore the first one's cache: %+v\n%s", final, trace)
	}
	for _, d := range []string{dirA, dirB} {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				t.Errorf("file left in a cache dir: %s", p)
			}
			return nil
		})
	}
}

// stalledStore never answers until the context ends.
type stalledStore struct{ blob.Store }

func (stalledStore) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	<-ctx.Done()
	return nil, blob.Info{}, ctx.Err()
}

func (stalledStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestAgentCacheStoreStalls(t *testing.T) {
	fs := newFakeServer(t)
	j := fs.newJob(142, "mkdir -p vendor && echo x > vendor/lib.txt")
	j.Cache = []client.Cache{{Key: "k", Paths: []string{"vendor/"}, Policy: "pull-push"}}
	fs.addJob(j)
	startRunner(t, fs, func(c *Config) { c.Cache = stalledStore{}; c.CacheTimeout = 300 * time.Millisecond })
	final, trace := fs.waitFinal(t, 142, 30*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "Failed to download cache k") || !strings.Contains(trace, "Failed to create cache") {
		t.Fatalf("stalled cache store: %+v\n%s", final, trace)
	}
}
