package runnerapi

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

// BenchmarkTracePatch measures what storing a running job's log costs the
// server: PATCH /jobs/:id/trace over loopback HTTP, appending body-sized
// pieces (a runner's 3 s tick of a chatty job: 4 KiB; a log streaming at
// full speed: 1 MiB per PATCH); "parallel" is 8 jobs appending 64 KiB
// pieces at once. A job is replaced before its log reaches the size limit.
//
//	go test ./internal/runnerapi -run '^$' -bench TracePatch -benchtime 2s
func BenchmarkTracePatch(b *testing.B) {
	const perJob = 48 << 20
	newJob := func(b *testing.B, e *env, tok string) (string, map[string]string) {
		e.addJobs(1, "")
		job, _ := e.request(tok)
		if job == nil {
			b.Fatal("no job")
		}
		return fmt.Sprintf("/api/v4/jobs/%d/trace", idOf(job)), map[string]string{"JOB-TOKEN": job["token"].(string), "Content-Type": "text/plain"}
	}
	patch := func(b *testing.B, e *env, path string, hdr map[string]string, off int64, body []byte) bool {
		h := map[string]string{"Content-Range": fmt.Sprintf("%d-%d", off, off+int64(len(body))-1)}
		for k, v := range hdr {
			h[k] = v
		}
		if r := e.do("PATCH", path, h, body); r.code != 202 {
			b.Errorf("patch at %d: %d %s", off, r.code, r.body)
			return false
		}
		return true
	}
	run := func(b *testing.B, open func(b *testing.B) *store.Store) {
		for _, size := range []int{4 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
				e := newEnv(b, open(b), queue.NewMemory())
				tok := e.addRunner(store.Runner{RunUntagged: true})
				body := bytes.Repeat([]byte("0123456789abcde\n"), size/16)
				path, hdr := newJob(b, e, tok)
				var off int64
				b.SetBytes(int64(size))
				for b.Loop() {
					if off+int64(size) > perJob {
						path, hdr = newJob(b, e, tok)
						off = 0
					}
					if !patch(b, e, path, hdr, off, body) {
						return
					}
					off += int64(size)
				}
			})
		}
		b.Run("parallel8x64KiB", func(b *testing.B) {
			e := newEnv(b, open(b), queue.NewMemory())
			tok := e.addRunner(store.Runner{RunUntagged: true})
			body := bytes.Repeat([]byte("0123456789abcde\n"), 4096)
			// Jobs are taken before the clock starts: each goroutine
			// takes a fresh one when its log nears the limit.
			type job struct {
				path string
				hdr  map[string]string
			}
			jobs := make(chan job, 64)
			for range cap(jobs) {
				path, hdr := newJob(b, e, tok)
				jobs <- job{path, hdr}
			}
			b.SetBytes(int64(len(body)))
			b.SetParallelism(4) // 8 goroutines on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				j := <-jobs
				var off int64
				for pb.Next() {
					if off+int64(len(body)) > perJob {
						j, off = <-jobs, 0
					}
					if !patch(b, e, j.path, j.hdr, off, body) {
						return
					}
					off += int64(len(body))
				}
			})
		})
	}
	b.Run("sqlite", func(b *testing.B) {
		run(b, func(b *testing.B) *store.Store {
			st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "kiln.db"), nil, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		})
	})
	b.Run("postgres", func(b *testing.B) {
		run(b, func(b *testing.B) *store.Store {
			st, err := store.Open(context.Background(), testenv.PostgresDSN(b), nil, store.Options{Schema: testenv.UniqueName("kiln_bench")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.DropSchema(context.Background()); st.Close() })
			return st
		})
	})
}
