// Package archtest keeps Kiln's shape (docs/architecture.md) with a test
// that reads the Go sources: authorization is decided in internal/access
// (and the engine), not re-implemented by the adapters that translate HTTP
// and schedules into requests; the engine writes no SQL; adapters do not
// import each other except through the few presenters listed below.
package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kilnci/kiln/internal/"

// adapters turn HTTP, git, the runner protocol and schedules into calls of
// the engine and the store. server assembles them and serves git over HTTP.
var adapters = []string{"api", "web", "runnerapi", "schedule", "trigger", "server"}

// allowedAdapterImports are the adapter-to-adapter imports that exist on
// purpose: web renders with api's presenters and uses schedule's ref
// helper, api parses trigger requests and bounds bridge depth with trigger.
// server may import everything (it wires the adapters together).
var allowedAdapterImports = map[string][]string{
	"web": {"api", "schedule"},
	"api": {"trigger"},
}

var roles = map[string]bool{"NoAccess": true, "Guest": true, "Reporter": true, "Developer": true, "Maintainer": true, "Owner": true}

// file is one parsed source file with the local names of its imports.
type file struct {
	pkg, name string
	f         *ast.File
	fset      *token.FileSet
	imports   map[string]string // local name -> import path
}

func parseDir(t *testing.T, dir, pkg string) []*file {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*file
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		f, err := parseSource(pkg, n, string(src))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func parseSource(pkg, name, src string) (*file, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		local := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			local = im.Name.Name
		}
		imports[local] = p
	}
	return &file{pkg: pkg, name: name, f: f, fset: fset, imports: imports}, nil
}

func (f *file) pos(n ast.Node) string {
	p := f.fset.Position(n.Pos())
	return fmt.Sprintf("internal/%s/%s:%d", f.pkg, f.name, p.Line)
}

// pkgSel reports whether e is pkg.Name for the internal package pkg (as
// imported by f) and one of names.
func (f *file) pkgSel(e ast.Expr, pkg string, names map[string]bool) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && f.imports[id.Name] == module+pkg && names[sel.Sel.Name]
}

func isRole(f *file, e ast.Expr) bool {
	return f.pkgSel(e, "store", roles) || f.pkgSel(e, "access", roles)
}

func isComparison(op token.Token) bool {
	switch op {
	case token.LSS, token.GTR, token.LEQ, token.GEQ, token.EQL, token.NEQ:
		return true
	}
	return false
}

func isString(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}

func fieldNamed(e ast.Expr, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == name
}

// adapterViolations lists the rules f, a file of an adapter package, breaks.
func adapterViolations(f *file) []string {
	var out []string
	report := func(n ast.Node, msg string) { out = append(out, f.pos(n)+": "+msg) }
	allowedCalls := map[string]bool{}
	if f.pkg == "api" && f.name == "protected.go" {
		allowedCalls["ProtectedRefs"] = true // the protected branches/tags API lists them
	}
	ast.Inspect(f.f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if f.pkgSel(n, "store", roles) {
				report(n, "uses the store's access-level constant "+n.Sel.Name+" (roles are internal/access's)")
			}
		case *ast.BinaryExpr:
			for _, side := range []ast.Expr{n.X, n.Y} {
				if fieldNamed(side, "JobTokenAllowlist") {
					report(n, "decides on the job-token allowlist itself (access.JobTokenAllowed)")
				}
			}
			if !isComparison(n.Op) {
				break
			}
			if isRole(f, n.X) || isRole(f, n.Y) {
				report(n, "compares an access level itself (ask internal/access)")
			}
			if (fieldNamed(n.X, "Visibility") && isString(n.Y)) || (fieldNamed(n.Y, "Visibility") && isString(n.X)) {
				report(n, "compares a visibility itself (access.CanRead/Hidden/VisibleTo)")
			}
		case *ast.UnaryExpr:
			if n.Op == token.NOT && fieldNamed(n.X, "JobTokenAllowlist") {
				report(n, "decides on the job-token allowlist itself (access.JobTokenAllowed)")
			}
		case *ast.IfStmt:
			if fieldNamed(n.Cond, "JobTokenAllowlist") {
				report(n, "decides on the job-token allowlist itself (access.JobTokenAllowed)")
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				break
			}
			switch name := sel.Sel.Name; {
			case name == "AccessLevel" || name == "GroupAccessLevel":
				report(n, "reads access levels from the store (access.Policy.Level)")
			case name == "ProtectedRefs" && !allowedCalls[name]:
				report(n, "reads protected refs itself (access.Policy.Protected/ProtectedPatterns)")
			case f.pkgSel(sel, "access", map[string]bool{"MatchRef": true, "RefProtected": true}):
				report(n, "matches protected patterns itself (access.Policy.Protected)")
			}
			if id, ok := sel.X.(*ast.Ident); ok && sel.Sel.Name == "Match" && (f.imports[id.Name] == "path" || f.imports[id.Name] == "path/filepath") {
				report(n, "matches patterns with "+id.Name+".Match (protected refs are access.MatchRef's)")
			}
		}
		return true
	})
	for local, p := range f.imports {
		dep, ok := strings.CutPrefix(p, module)
		if !ok || f.pkg == "server" || dep == f.pkg {
			continue
		}
		for _, a := range adapters {
			if dep == a && !contains(allowedAdapterImports[f.pkg], a) {
				out = append(out, fmt.Sprintf("internal/%s/%s: imports adapter %s (as %s)", f.pkg, f.name, dep, local))
			}
		}
	}
	return out
}

var sqlCalls = map[string]bool{"Exec": true, "ExecContext": true, "Query": true, "QueryContext": true, "QueryRow": true, "QueryRowContext": true, "Prepare": true, "PrepareContext": true}

// engineViolations lists SQL in a file of the pipeline engine: it uses the
// store's Go API, never SQL.
func engineViolations(f *file) []string {
	var out []string
	for _, p := range f.imports {
		if p == "database/sql" {
			out = append(out, fmt.Sprintf("internal/%s/%s: imports database/sql", f.pkg, f.name))
		}
	}
	ast.Inspect(f.f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sqlCalls[sel.Sel.Name] {
				out = append(out, f.pos(n)+": calls "+sel.Sel.Name+" (SQL belongs in internal/store)")
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				s, _ := strconv.Unquote(n.Value)
				w := strings.ToUpper(strings.TrimSpace(s))
				for _, kw := range []string{"SELECT ", "INSERT ", "UPDATE ", "DELETE "} {
					if strings.HasPrefix(w, kw) {
						out = append(out, f.pos(n)+": SQL text "+strconv.Quote(s))
					}
				}
			}
		}
		return true
	})
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestArchitecture checks the whole tree.
func TestArchitecture(t *testing.T) {
	root := filepath.Join("..")
	var problems []string
	for _, a := range adapters {
		for _, f := range parseDir(t, filepath.Join(root, a), a) {
			problems = append(problems, adapterViolations(f)...)
		}
	}
	err := filepath.WalkDir(filepath.Join(root, "pipeline"), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, f := range parseDir(t, path, filepath.ToSlash(rel)) {
			problems = append(problems, engineViolations(f)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestRulesCatchViolations feeds each rule a file that breaks it, so that
// a rule that silently stopped matching fails here.
func TestRulesCatchViolations(t *testing.T) {
	const header = `package x
import (
	"path"
	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/web"
	st "github.com/kilnci/kiln/internal/store"
)
var _ = web.X
var _, _, _ = access.At, path.Base, st.X
`
	for _, tc := range []struct {
		pkg, body, want string
	}{
		{"api", `func f(level int) bool { return level >= store.Maintainer }`, "store's access-level constant"},
		{"api", `func f(level int) bool { return level < access.Developer }`, "compares an access level"},
		{"web", `func f(level int) bool { return access.Owner == level }`, "compares an access level"},
		{"runnerapi", `func f(l int) bool { return l >= st.Reporter }`, "compares an access level"},
		{"schedule", `func f(p *store.Project) bool { return p.Visibility == "public" }`, "compares a visibility"},
		{"trigger", `func f(p *store.Project) bool { return !p.JobTokenAllowlist }`, "job-token allowlist"},
		{"server", `func f(p *store.Project, a, b int64) bool { return p.JobTokenAllowlist && a != b }`, "job-token allowlist"},
		{"api", `func f(p *store.Project) { if p.JobTokenAllowlist { } }`, "job-token allowlist"},
		{"api", `func f(s *store.Store) { s.AccessLevel(nil, nil, nil) }`, "reads access levels"},
		{"web", `func f(s *store.Store) { s.GroupAccessLevel(nil, 0, nil) }`, "reads access levels"},
		{"web", `func f(s *store.Store) { s.ProtectedRefs(nil, 0, "branch") }`, "reads protected refs"},
		{"api", `func f() bool { return access.MatchRef("release/*", "release/1") }`, "matches protected patterns"},
		{"api", `func f() bool { ok, _ := path.Match("release/*", "release/1"); return ok }`, "path.Match"},
		{"api", `func f() {}`, "imports adapter web"},
	} {
		f, err := parseSource(tc.pkg, "bad.go", header+tc.body)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(adapterViolations(f), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q: violations %q, want one about %q", tc.pkg, tc.body, got, tc.want)
		}
	}
	// web may import api; a clean file has no violations.
	clean, _ := parseSource("web", "ok.go", `package web
import "github.com/kilnci/kiln/internal/api"
import "github.com/kilnci/kiln/internal/access"
func f(level int) bool { return access.At(level, access.Developer) }
var _ = api.X`)
	if v := adapterViolations(clean); len(v) != 0 {
		t.Errorf("clean file: %v", v)
	}
	for _, body := range []string{
		`import "database/sql"`,
		`func f(tx interface{ Exec(string, ...any) }) { tx.Exec("x") }`,
		"var q = `UPDATE jobs SET spec = ? WHERE id = ?`",
	} {
		f, err := parseSource("pipeline", "bad.go", "package pipeline\n"+body)
		if err != nil {
			t.Fatal(err)
		}
		if len(engineViolations(f)) == 0 {
			t.Errorf("engine rule missed %q", body)
		}
	}
}
