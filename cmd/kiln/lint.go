package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kilnci/kiln/internal/ciconfig"
)

const lintUsage = `Usage: kiln lint [flags] [FILE]

Validates a .gitlab-ci.yml offline, with the same rules the server uses.
FILE defaults to .gitlab-ci.yml; "-" reads standard input. include: local
files are read relative to FILE's directory (the current directory for
standard input) and may not leave it.

Exit status: 0 valid, 1 invalid, 2 usage or I/O error.

Flags:
`

// maxLintFile bounds what kiln lint reads; the server refuses bigger CI
// files too.
const maxLintFile = 4 << 20

func lintCmd(args []string, stdout, stderr io.Writer) int {
	return lintWithStdin(args, os.Stdin, stdout, stderr)
}

func lintWithStdin(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("kiln lint", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, lintUsage); fset.PrintDefaults() }
	asJSON := fset.Bool("json", false, "print the result as the lint API's JSON")
	showJobs := fset.Bool("jobs", false, "list the jobs of a valid configuration")
	executor := fset.String("executor", "shell", "the executor the jobs will run with (shell, shell-sandbox, docker): image: and services: warn unless docker")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 1 {
		fmt.Fprintln(stderr, "kiln lint: at most one FILE")
		fset.Usage()
		return 2
	}
	file := ".gitlab-ci.yml"
	if fset.NArg() == 1 {
		file = fset.Arg(0)
	}
	var src []byte
	var err error
	dir := "."
	if file == "-" {
		src, err = io.ReadAll(io.LimitReader(stdin, maxLintFile+1))
	} else {
		dir = filepath.Dir(file)
		src, err = readLimited(file)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kiln lint:", err)
		return 2
	}
	if len(src) > maxLintFile {
		fmt.Fprintf(stderr, "kiln lint: %s is larger than %d bytes\n", file, maxLintFile)
		return 2
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Fprintln(stderr, "kiln lint:", err)
		return 2
	}
	defer root.Close()
	var res ciconfig.LintResult
	if strings.TrimSpace(string(src)) == "" {
		res = ciconfig.LintResult{Errors: []string{"Please provide content of .gitlab-ci.yml"}, Warnings: []string{}, Jobs: []ciconfig.LintJob{}}
	} else {
		res = ciconfig.Lint(src, ciconfig.Options{Files: dirFiles{root}, AllErrors: true}, nil)
		if res.Valid && *executor != "docker" {
			res.Warnings = append(res.Warnings, containerWarnings(src, dirFiles{root}, *executor)...)
		}
	}
	name := file
	if file == "-" {
		name = "<stdin>"
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		for _, e := range res.Errors {
			fmt.Fprintf(stdout, "%s: error: %s\n", name, e)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(stdout, "%s: warning: %s\n", name, w)
		}
		if res.Valid {
			fmt.Fprintf(stdout, "%s: valid (%d jobs)\n", name, len(res.Jobs))
			if *showJobs {
				for _, j := range res.Jobs {
					fmt.Fprintf(stdout, "  %-20s stage=%s when=%s allow_failure=%t\n", j.Name, j.Stage, j.When, j.AllowFailure)
				}
			}
		}
	}
	if !res.Valid {
		return 1
	}
	return 0
}

// containerWarnings names the jobs whose image: or services: a runner
// without a container executor ignores.
func containerWarnings(src []byte, files dirFiles, executor string) []string {
	cfg, err := ciconfig.Parse(src, ciconfig.Options{Files: files})
	if err != nil {
		return nil
	}
	var out []string
	for _, j := range cfg.Jobs {
		var kw []string
		if j.Image != nil && j.Image.Name != "" {
			kw = append(kw, "image:")
		}
		if len(j.Services) > 0 {
			kw = append(kw, "services:")
		}
		if len(kw) == 0 || j.Trigger != nil {
			continue
		}
		out = append(out, fmt.Sprintf("job %s uses %s, which only a runner with the docker executor honours; the %s executor runs its script on the runner's host and ignores them",
			j.Name, strings.Join(kw, " and "), executor))
	}
	return out
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxLintFile+1))
}

// dirFiles serves include:local and rules:exists from a directory. It goes
// through an os.Root so that neither ".." nor a symlink can read outside
// the directory the CI file is in.
type dirFiles struct{ root *os.Root }

func (d dirFiles) ReadFile(p string) ([]byte, error) {
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	if clean == "" {
		return nil, fs.ErrNotExist
	}
	f, err := d.root.Open(clean)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLintFile+1))
	if err == nil && len(data) > maxLintFile {
		return nil, fmt.Errorf("%s is too large", p)
	}
	return data, err
}

// maxExistsWalk bounds the files rules:exists looks at, so that linting in
// a huge directory stays quick.
const maxExistsWalk = 100000

func (d dirFiles) Exists(globs []string) (bool, error) {
	found, seen := false, 0
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() {
			if e.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if seen++; seen > maxExistsWalk {
			return fs.SkipAll
		}
		for _, g := range globs {
			if ciconfig.GlobMatch(g, p) {
				found = true
				return fs.SkipAll
			}
		}
		return nil
	})
	return found, err
}
