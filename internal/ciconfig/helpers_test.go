package ciconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mapFS is an in-memory FileReader.
type mapFS map[string]string

func (m mapFS) ReadFile(path string) ([]byte, error) {
	s, ok := m[path]
	if !ok {
		return nil, fmt.Errorf("%s: not found", path)
	}
	return []byte(s), nil
}

func (m mapFS) Exists(globs []string) (bool, error) {
	for _, g := range globs {
		for p := range m {
			if GlobMatch(g, p) {
				return true, nil
			}
		}
	}
	return false, nil
}

// dirFS is a FileReader over a directory of test data.
type dirFS string

func (d dirFS) ReadFile(path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(path)))
}

func (d dirFS) Exists(globs []string) (bool, error) {
	found := false
	err := filepath.WalkDir(string(d), func(p string, e os.DirEntry, err error) error {
		if err != nil || found {
			return err
		}
		rel, _ := filepath.Rel(string(d), p)
		rel = filepath.ToSlash(rel)
		for _, g := range globs {
			if GlobMatch(g, rel) {
				found = true
			}
		}
		return nil
	})
	return found, err
}

// vars builds a variable lookup from pairs.
func vars(kv map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := kv[name]
		return v, ok
	}
}

// messages returns the GitLab messages of a Parse error.
func messages(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Errors
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, not *Errors: %v", err, err)
	}
	return e.Messages
}

func mustParse(t *testing.T, src string, opts Options) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src), opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func jobNames(jobs []*Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Name
	}
	return out
}

func plannedNames(p *Plan) []string {
	out := make([]string, len(p.Jobs))
	for i, j := range p.Jobs {
		out[i] = j.Name
	}
	return out
}

func varMap(vs []Variable) map[string]string {
	m := map[string]string{}
	for _, v := range vs {
		m[v.Key] = v.Value
	}
	return m
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}
