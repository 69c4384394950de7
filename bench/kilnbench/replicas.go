package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// startReplicas starts n servers on one PostgreSQL database with separate
// data dirs that share only the repositories dir and the first one's
// secrets key (docs/operations.md, Running several replicas).
func startReplicas(bin, work, dsn string, n int, args ...string) []*kiln {
	repos, err := os.MkdirTemp(work, "repositories")
	check(err)
	var ks []*kiln
	for i := range n {
		a := append([]string{"--repositories-dir", repos}, args...)
		if i > 0 {
			a = append(a, "--secrets-key-file", filepath.Join(ks[0].dataDir, "secrets.key"))
		}
		k, err := startKiln(bin, work, dsn, a...)
		check(err)
		ks = append(ks, k)
	}
	return ks
}

// loadReplicas is load with client i sending to replica i mod len(ks).
func loadReplicas(ks []*kiln, pid int64, tok string, c int, d time.Duration) (float64, []time.Duration, int) {
	var mu sync.Mutex
	var lats []time.Duration
	var fails atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range c {
		k := ks[i%len(ks)]
		wg.Go(func() {
			var local []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				code, _, err := k.trigger(pid, tok)
				if err != nil || code != 201 {
					fails.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	sortDur(lats)
	return float64(len(lats)) / el.Seconds(), lats, int(fails.Load())
}

// replicaSet is one and the same project served by nr replicas.
type replicaSet struct {
	nr  int
	ks  []*kiln
	pid int64
	tok string
}

func newReplicaSet(bin, work, pg string, nr int, args ...string) *replicaSet {
	ks := startReplicas(bin, work, freshSchema(pg), nr, args...)
	pid, err := ks[0].project(work, fmt.Sprintf("seed%d", time.Now().UnixNano()), seedCI)
	check(err)
	tok, err := ks[0].triggerToken(pid)
	check(err)
	return &replicaSet{nr: nr, ks: ks, pid: pid, tok: tok}
}

func (r *replicaSet) stop() {
	for _, k := range r.ks {
		k.stop()
	}
}

// replicas measures, with one and with two replicas on one PostgreSQL
// database (separate data dirs, shared repositories): trigger throughput
// without runners (clients spread over the replicas), then trigger → success
// of the seed's 3-job pipeline with two built-in runners in all (two on the
// one replica, one on each of two), one pipeline at a time and in bursts.
// Both set-ups run side by side (each on its own schema) and every step
// alternates between them, so that a load change on a shared machine hits
// both alike and their ratio holds.
func replicas(bin, work, pg string, levels []int, d time.Duration, runs, n, burst int) {
	fmt.Printf("\n## Replicas: trigger throughput (PostgreSQL, seed 3-job pipeline, no runners, clients spread over the replicas, one and two replicas alternated; load average %s)\n\n", loadAvg())
	fmt.Println("| clients | replicas | pipelines/s (median of runs) | p50 | p90 | p99 | failed |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	sets := []*replicaSet{newReplicaSet(bin, work, pg, 1, "--builtin-runners", "0"), newReplicaSet(bin, work, pg, 2, "--builtin-runners", "0")}
	for _, r := range sets {
		loadReplicas(r.ks, r.pid, r.tok, 4, time.Second) // warm up
	}
	for _, c := range levels {
		rates := make([][]float64, len(sets))
		all := make([][]time.Duration, len(sets))
		failed := make([]int, len(sets))
		for range runs {
			for i, r := range sets {
				rate, lats, f := loadReplicas(r.ks, r.pid, r.tok, c, d)
				rates[i] = append(rates[i], rate)
				all[i] = append(all[i], lats...)
				failed[i] += f
			}
		}
		for i, r := range sets {
			sortDur(all[i])
			fmt.Printf("| %d | %d | %.0f | %s | %s | %s | %d |\n", c, r.nr, median(rates[i]), ms(pct(all[i], 50)), ms(pct(all[i], 90)), ms(pct(all[i], 99)), failed[i])
		}
	}
	for _, r := range sets {
		r.stop()
	}
	fmt.Printf("\nload average: %s\n", loadAvg())

	fmt.Printf("\n## Replicas: trigger → pipeline success (PostgreSQL, seed 3-job pipeline: 3 stages, each job fetches the repository; 2 built-in runners in all; load average %s)\n\n", loadAvg())
	sets = []*replicaSet{newReplicaSet(bin, work, pg, 1, "--builtin-runners", "2"), newReplicaSet(bin, work, pg, 2, "--builtin-runners", "1")}
	defer func() {
		for _, r := range sets {
			r.stop()
		}
	}()
	// One at a time, alternating between the set-ups: the runners are
	// idle at each trigger.
	seq := make([][]time.Duration, len(sets))
	bad := make([]int, len(sets))
	for i := range n {
		for j, r := range sets {
			k := r.ks[i%r.nr]
			t0 := time.Now()
			code, plID, err := k.trigger(r.pid, r.tok)
			if err != nil || code != 201 {
				check(fmt.Errorf("trigger: %d %v", code, err))
			}
			if st := waitPipelineFor(k, r.pid, plID, 2*time.Minute); st != "success" {
				bad[j]++
			}
			seq[j] = append(seq[j], time.Since(t0))
		}
	}
	fmt.Println("| replicas | mode | pipelines | p50 | p90 | p99 | all done in | pipelines/s | not success |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for j, r := range sets {
		sortDur(seq[j])
		fmt.Printf("| %d | one at a time | %d | %s | %s | %s | — | — | %d |\n", r.nr, n, ms(pct(seq[j], 50)), ms(pct(seq[j], 90)), ms(pct(seq[j], 99)), bad[j])
	}
	// A burst: all triggers at once, spread over the replicas; one
	// set-up after the other.
	var loads []string
	for _, r := range sets {
		var mu sync.Mutex
		var lats []time.Duration
		var nbad atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := range burst {
			k := r.ks[i%r.nr]
			wg.Go(func() {
				t0 := time.Now()
				code, plID, err := k.trigger(r.pid, r.tok)
				if err != nil || code != 201 {
					nbad.Add(1)
					return
				}
				if st := waitPipelineFor(k, r.pid, plID, 5*time.Minute); st != "success" {
					nbad.Add(1)
					return
				}
				mu.Lock()
				lats = append(lats, time.Since(t0))
				mu.Unlock()
			})
		}
		wg.Wait()
		all := time.Since(start)
		sortDur(lats)
		loads = append(loads, fmt.Sprintf("%d replica(s): %s", r.nr, loadAvg()))
		fmt.Printf("| %d | burst | %d | %s | %s | %s | %s | %.1f | %d |\n", r.nr, burst, ms(pct(lats, 50)), ms(pct(lats, 90)), ms(pct(lats, 99)), all.Round(10*time.Millisecond), float64(len(lats))/all.Seconds(), nbad.Load())
	}
	fmt.Printf("\nload average after each burst: %s\n", strings.Join(loads, "; "))
}

// waitPipelineFor polls (every 20 ms) until the pipeline completes and
// returns its status, "timeout" after d.
func waitPipelineFor(k *kiln, pid, plID int64, d time.Duration) string {
	return pollPipeline(k, pid, plID, d, 20*time.Millisecond)
}

// loadAvg is the machine's 1, 5 and 15 minute load averages (other work
// on a shared machine skews every number; ratios within one run hold up
// better).
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
