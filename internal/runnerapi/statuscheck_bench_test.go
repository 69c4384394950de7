package runnerapi

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

// BenchmarkStatusCheck measures what one status check of a running job
// (Kiln's runner asks every second while the job prints nothing) costs the
// server: PUT /jobs/:id state=running over loopback HTTP, one indexed read,
// no write (liveness is written at most every touchEvery).
//
//	go test ./internal/runnerapi -run '^$' -bench StatusCheck -benchtime 2000x
func BenchmarkStatusCheck(b *testing.B) {
	run := func(b *testing.B, st *store.Store) {
		e := newEnv(b, st, queue.NewMemory())
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(1, "")
		job, _ := e.request(tok)
		if job == nil {
			b.Fatal("no job")
		}
		path := fmt.Sprintf("/api/v4/jobs/%d", idOf(job))
		hdr := map[string]string{"JOB-TOKEN": job["token"].(string), "Content-Type": "application/json"}
		body := map[string]any{"state": "running", "output": map[string]any{"checksum": "crc32:00000000", "bytesize": 0}}
		b.ResetTimer()
		for b.Loop() {
			if r := e.do("PUT", path, hdr, body); r.code != 200 {
				b.Fatalf("status check: %d", r.code)
			}
		}
	}
	b.Run("sqlite", func(b *testing.B) {
		st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "kiln.db"), nil, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		run(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		st, err := store.Open(context.Background(), testenv.PostgresDSN(b), nil, store.Options{Schema: testenv.UniqueName("kiln_bench")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.DropSchema(context.Background()); st.Close() })
		run(b, st)
	})
}
