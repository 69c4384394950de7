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

// replicas measures, with one and with two replicas on one PostgreSQL
// database (separate data dirs, shared repositories): trigger throughput
// without runners (clients spread over the replicas), then trigger → success
// of the seed's 3-job pipeline with two built-in runners in all (two on the
// one replica, one on each of two), one pipeline at a time and in bursts.
func replicas(bin, work, pg string, levels []int, d time.Duration, runs, n, burst int) {
	fmt.Printf("\n## Replicas: trigger throughput (PostgreSQL, seed 3-job pipeline, no runners, clients spread over the replicas; load average %s)\n\n", loadAvg())
	fmt.Println("| replicas | clients | pipelines/s (median of runs) | p50 | p90 | p99 | failed |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for _, nr := range []int{1, 2} {
		ks := startReplicas(bin, work, freshSchema(pg), nr, "--builtin-runners", "0")
		pid, err := ks[0].project(work, fmt.Sprintf("seed%d", time.Now().UnixNano()), seedCI)
		check(err)
		tok, err := ks[0].triggerToken(pid)
		check(err)
		loadReplicas(ks, pid, tok, 4, time.Second) // warm up
		for _, c := range levels {
			var rates []float64
			var all []time.Duration
			failed := 0
			for range runs {
				rate, lats, f := loadReplicas(ks, pid, tok, c, d)
				rates = append(rates, rate)
				all = append(all, lats...)
				failed += f
			}
			sortDur(all)
			fmt.Printf("| %d | %d | %.0f | %s | %s | %s | %d |\n", nr, c, median(rates), ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99)), failed)
		}
		for _, k := range ks {
			k.stop()
		}
	}
	fmt.Printf("\nload average: %s\n", loadAvg())

	fmt.Printf("\n## Replicas: trigger → pipeline success (PostgreSQL, seed 3-job pipeline: 3 stages, each job fetches the repository; 2 built-in runners in all)\n\n")
	var loads []string
	defer func() { fmt.Printf("\nload average after the burst: %s\n", strings.Join(loads, "; ")) }()
	fmt.Println("| replicas | mode | pipelines | p50 | p90 | p99 | all done in | pipelines/s | not success |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, nr := range []int{1, 2} {
		ks := startReplicas(bin, work, freshSchema(pg), nr, "--builtin-runners", fmt.Sprint(2/nr))
		pid, err := ks[0].project(work, fmt.Sprintf("seed%d", time.Now().UnixNano()), seedCI)
		check(err)
		tok, err := ks[0].triggerToken(pid)
		check(err)
		// One at a time: the runners are idle at each trigger.
		var seq []time.Duration
		bad := 0
		for i := range n {
			k := ks[i%nr]
			t0 := time.Now()
			code, plID, err := k.trigger(pid, tok)
			if err != nil || code != 201 {
				check(fmt.Errorf("trigger: %d %v", code, err))
			}
			if st := waitPipelineFor(k, pid, plID, 2*time.Minute); st != "success" {
				bad++
			}
			seq = append(seq, time.Since(t0))
		}
		sortDur(seq)
		fmt.Printf("| %d | one at a time | %d | %s | %s | %s | — | — | %d |\n", nr, n, ms(pct(seq, 50)), ms(pct(seq, 90)), ms(pct(seq, 99)), bad)
		// A burst: all triggers at once, spread over the replicas.
		var mu sync.Mutex
		var lats []time.Duration
		var nbad atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := range burst {
			k := ks[i%nr]
			wg.Go(func() {
				t0 := time.Now()
				code, plID, err := k.trigger(pid, tok)
				if err != nil || code != 201 {
					nbad.Add(1)
					return
				}
				if st := waitPipelineFor(k, pid, plID, 5*time.Minute); st != "success" {
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
		loads = append(loads, fmt.Sprintf("%d replica(s): %s", nr, loadAvg()))
		fmt.Printf("| %d | burst | %d | %s | %s | %s | %s | %.1f | %d |\n", nr, burst, ms(pct(lats, 50)), ms(pct(lats, 90)), ms(pct(lats, 99)), all.Round(10*time.Millisecond), float64(len(lats))/all.Seconds(), nbad.Load())
		for _, k := range ks {
			k.stop()
		}
	}
}

// waitPipelineFor polls (every 20 ms) until the pipeline completes and
// returns its status, "timeout" after d.
func waitPipelineFor(k *kiln, pid, plID int64, d time.Duration) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var p struct{ Status string }
		k.api("GET", fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", pid, plID), nil, &p)
		switch p.Status {
		case "success", "failed", "canceled", "skipped":
			return p.Status
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "timeout"
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
