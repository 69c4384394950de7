package server

import (
	"context"
	"database/sql"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kilnci/kiln/internal/testenv"
)

// TestEveryLoopIsRegistered: the server's wiring registers each of its
// background loops with the lifecycle, Serve starts them all (periodic ones
// make their first pass at once: recovery runs at start) and shutdown stops
// them all.
func TestEveryLoopIsRegistered(t *testing.T) {
	want := []string{"recovery", "stale-jobs", "unacknowledged-jobs", "artifact-expiry", "builtin-runners", "scheduler", "trigger-deliveries-prune", "idempotency-keys-prune", "webhook-deliveries-prune", "rate-counters-prune", "file-sweeper", "trace-archiver"}
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), BuiltinRunners: 1, InitialRootToken: "glpat-lifecycle-test-0123456789"}
			w := want
			if kind == "postgres" {
				dsn := testenv.PostgresDSN(t)
				schema := testenv.UniqueName("kiln_lifecycle")
				db, err := sql.Open("pgx", dsn)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); db.Close() })
				cfg.Database = dsn + "&search_path=" + schema
				w = append([]string{"notify-listener"}, want...)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			srv, err := New(context.Background(), cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var names []string
			for _, st := range srv.Loops() {
				names = append(names, st.Name)
			}
			slices.Sort(names)
			w = slices.Clone(w)
			slices.Sort(w)
			if !slices.Equal(names, w) {
				t.Fatalf("registered loops %v, want %v", names, w)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, ln) }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				ready := true
				for _, st := range srv.Loops() {
					if !st.Running || (st.Every > 0 && st.Passes == 0) {
						ready = false
					}
				}
				if ready {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("loops not all running with a first pass: %+v", srv.Loops())
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, st := range srv.Loops() {
				if st.LastErr != "" {
					t.Errorf("loop %s: %s", st.Name, st.LastErr)
				}
			}
			// /metrics reports every loop.
			rec := httptest.NewRecorder()
			srv.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			for _, name := range w {
				if !strings.Contains(rec.Body.String(), `kiln_background_loop_running{loop="`+name+`"} 1`) {
					t.Errorf("/metrics does not show loop %s running", name)
				}
			}
			if !strings.Contains(rec.Body.String(), `kiln_background_loop_passes_total{loop="recovery"} 1`) {
				t.Errorf("/metrics: no recovery pass:\n%s", rec.Body.String())
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			for _, st := range srv.Loops() {
				if st.Running {
					t.Errorf("loop %s still running after shutdown", st.Name)
				}
			}
		})
	}
}

// TestNoGoroutineOutsideTheLifecycle: nothing in the server package starts
// a goroutine except the sites below, each per request or per event (and
// waited for by Close) or inside a loop the lifecycle owns. A new
// background loop must be a lifecycle.Loop (s.loops.Add); adding a site
// here needs a reason it is not one.
func TestNoGoroutineOutsideTheLifecycle(t *testing.T) {
	allowed := map[string]string{
		"server.go: Serve: go func() { errc <- srv.Serve(ln) }()":                         "the HTTP server itself",
		"githttp.go: onPush: go func() {":                                                 "per push, tracked by s.bg",
		"wire_triggers.go: wireTriggers: s.bg.Go(func() { b.Pending(ctx, jobID) })":       "per bridge, tracked by s.bg",
		"wire_triggers.go: wireTriggers: s.bg.Go(func() { b.Finished(ctx, pipelineID) })": "per finished pipeline, tracked by s.bg",
		"wire_runners.go: wireBuiltinRunners: wg.Go(func() {":                             "one per built-in runner, inside the builtin-runners loop",
		"wire_runners.go: wireBuiltinRunners: go func() { wg.Wait(); close(done) }()":     "bounded wait inside the builtin-runners loop",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				var site ast.Node
				switch n := n.(type) {
				case *ast.GoStmt:
					site = n
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Go" {
						site = n
					}
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "AfterFunc" {
						site = n
					}
				}
				if site == nil {
					return true
				}
				var b strings.Builder
				printer.Fprint(&b, fset, site)
				first, _, _ := strings.Cut(b.String(), "\n")
				key := name + ": " + fd.Name.Name + ": " + strings.TrimSpace(first)
				seen[key] = true
				if _, ok := allowed[key]; !ok {
					t.Errorf("%s starts a goroutine outside the lifecycle; register a lifecycle.Loop instead (or allow it here with a reason)", key)
				}
				return true
			})
		}
	}
	for k := range allowed {
		if !seen[k] {
			t.Errorf("allowed site %q no longer exists; remove it from the list", k)
		}
	}
}
