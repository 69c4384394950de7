// Command kilnbench measures Kiln end to end: it builds the real binary,
// starts it with a fresh data dir, creates projects, pushes repositories,
// creates trigger tokens and drives the server over loopback HTTP from this
// separate process. Each scenario prints a table; see docs/benchmarks.md.
//
//	go run ./bench/kilnbench -scenario throughput -db sqlite,postgres
//	go run ./bench/kilnbench -scenario latency
//	go run ./bench/kilnbench -scenario overhead -gcl /opt/gcl/node_modules/.bin/gitlab-ci-local
//	go run ./bench/kilnbench -scenario footprint
//	go run ./bench/kilnbench -scenario scale -pipelines 100000 -jobs-per 5
//	go run ./bench/kilnbench -scenario logs -log-mb 200
//	go run ./bench/kilnbench -scenario hostile -db sqlite,postgres
//	go run ./bench/kilnbench -scenario replicas -db postgres
//	go run ./bench/kilnbench -scenario objectstore -db postgres -artifact-mb 64
//
// -scenario takes a comma-separated list to measure several in one run.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// seedCI is the seed's 3-job pipeline: stages test → build → package.
const seedCI = `stages: [test, build, package]
test:
  stage: test
  script: "true"
build:
  stage: build
  script: "true"
package:
  stage: package
  script: "true"
`

func main() {
	scenario := flag.String("scenario", "throughput", "comma-separated: throughput, latency, overhead, footprint, scale, logs, hostile, replicas (PostgreSQL), objectstore (SeaweedFS) or all")
	dbs := flag.String("db", "sqlite", "comma-separated: sqlite, postgres")
	pg := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL DSN for -db postgres")
	conc := flag.String("concurrency", "1,8,32,128", "client concurrency levels for throughput")
	dur := flag.Duration("duration", 5*time.Second, "how long each throughput step runs")
	runs := flag.Int("runs", 3, "repetitions; medians are reported")
	n := flag.Int("n", 50, "samples for latency and overhead")
	gcl := flag.String("gcl", "", "path to gitlab-ci-local for the overhead comparison")
	pipelines := flag.Int("pipelines", 100000, "scale: pipelines seeded into the big database")
	jobsPer := flag.Int("jobs-per", 5, "scale: jobs per seeded pipeline")
	logMB := flag.Int("log-mb", 200, "logs: megabytes the job prints")
	flag.StringVar(&profileTo, "profile", "", "write a server CPU profile of the busiest throughput step to FILE.<db>")
	attackFor := flag.Duration("attack-for", 10*time.Second, "hostile: how long each attack runs")
	prebuilt := flag.String("kiln-bin", "", "use this kiln binary instead of building ./cmd/kiln (e.g. an older build, for before/after)")
	burst := flag.Int("burst", 60, "replicas: pipelines triggered at once for the trigger → success burst")
	artifactMB := flag.Int("artifact-mb", 64, "objectstore: MiB of the artifacts archive")
	keep := flag.Bool("keep", false, "keep the work directory (data dirs, server logs) and print its path")
	flag.Parse()

	work, err := os.MkdirTemp("", "kilnbench")
	check(err)
	if *keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := *prebuilt
	if bin == "" {
		bin, err = buildKiln(work)
		check(err)
	}
	fmt.Printf("# kilnbench %s — %d CPUs, %s, %s\n", *scenario, runtime.NumCPU(), memTotal(), time.Now().UTC().Format(time.RFC3339))

	for _, db := range strings.Split(*dbs, ",") {
		for _, scenario := range strings.Split(*scenario, ",") {
			runScenario(scenario, bin, work, db, *pg, *conc, *dur, *runs, *n, *gcl, *pipelines, *jobsPer, *logMB, *attackFor, *burst, *artifactMB)
		}
	}
}

func runScenario(scenario, bin, work, db, pg, conc string, dur time.Duration, runs, n int, gcl string, pipelines, jobsPer, logMB int, attackFor time.Duration, burst, artifactMB int) {
	dsn := ""
	if db == "postgres" {
		dsn = freshSchema(pg)
	}
	switch scenario {
	case "throughput":
		throughput(bin, work, db, dsn, parseInts(conc), dur, runs)
	case "latency":
		latency(bin, work, db, dsn, n)
	case "overhead":
		overhead(bin, work, db, dsn, n, gcl)
	case "footprint":
		footprint(bin, work, db, dsn)
	case "scale":
		scale(bin, work, db, dsn, pipelines, jobsPer, n, dur, runs)
	case "logs":
		logs(bin, work, db, dsn, logMB)
	case "hostile":
		hostile(bin, work, db, dsn, attackFor)
	case "replicas":
		if db != "postgres" {
			check(fmt.Errorf("-scenario replicas needs -db postgres"))
		}
		replicas(bin, work, pg, parseInts(conc), dur, runs, n, burst)
	case "objectstore":
		objectstore(bin, work, db, pg, artifactMB, runs)
	case "all":
		throughput(bin, work, db, dsn, parseInts(conc), dur, runs)
		latency(bin, work, db, freshIf(db, pg), n)
		overhead(bin, work, db, freshIf(db, pg), n, gcl)
		footprint(bin, work, db, freshIf(db, pg))
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(2)
	}
}

func freshIf(db, pg string) string {
	if db == "postgres" {
		return freshSchema(pg)
	}
	return ""
}

// freshSchema creates an empty schema and returns a DSN confined to it.
func freshSchema(dsn string) string {
	db, err := sql.Open("pgx", dsn)
	check(err)
	defer db.Close()
	name := fmt.Sprintf("kilnbench_%d", time.Now().UnixNano())
	_, err = db.Exec("CREATE SCHEMA " + name)
	check(err)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + name
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kilnbench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		check(err)
		out = append(out, n)
	}
	return out
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Join(strings.Fields(line), " ")
}

// pct returns the p-th percentile (0..100) of sorted durations.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

func sortDur(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
