package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLintCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("ci/.gitlab-ci.yml", "include: parts/a.yml\nb:\n  script: echo b\n  rules:\n    - exists: [parts/*.yml]\n")
	write("ci/parts/a.yml", "a:\n  script: echo a\n")
	write("secret.yml", "s:\n  script: echo leaked\n")
	escape := write("ci/escape.yml", "include: ../secret.yml\n")
	os.Symlink(filepath.Join(dir, "secret.yml"), filepath.Join(dir, "ci", "link.yml"))
	link := write("ci/link-ci.yml", "include: link.yml\n")
	bad := write("bad.yml", "job:\n  stage: nope\n  script: x\n")

	for _, tc := range []struct {
		args  []string
		stdin string
		code  int
		out   string
	}{
		{[]string{good}, "", 0, "valid (2 jobs)"},
		{[]string{"-jobs", good}, "", 0, "stage=test"},
		{[]string{"-json", good}, "", 0, `"valid": true`},
		{[]string{bad}, "", 1, "error: job job: chosen stage nope does not exist"},
		{[]string{escape}, "", 1, "Local file `../secret.yml` does not exist!"},
		{[]string{link}, "", 1, "does not exist"},
		{[]string{"-"}, "x:\n  script: y\n", 0, "<stdin>: valid"},
		{[]string{"-"}, "", 1, "Please provide content"},
		{[]string{"-"}, "a: [unclosed", 1, "error:"},
		{[]string{good, bad}, "", 2, ""},
		{[]string{filepath.Join(dir, "missing.yml")}, "", 2, ""},
		{[]string{"-bogus"}, "", 2, ""},
		// image: and services: are only honoured by the docker executor.
		{[]string{"-"}, "default:\n  image: alpine\nx:\n  script: y\n", 0, "<stdin>: warning: job x uses image:, which only a runner with the docker executor honours"},
		{[]string{"-"}, "x:\n  services: [redis]\n  script: y\n", 0, "job x uses services:, which"},
		{[]string{"-executor", "shell-sandbox", "-"}, "x:\n  image: {name: a}\n  script: y\n", 0, "the shell-sandbox executor runs its script on the runner's host"},
	} {
		var out, errb bytes.Buffer
		code := lintWithStdin(tc.args, strings.NewReader(tc.stdin), &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("kiln lint %v: %d\n%s%s\nwant %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
	// With the docker executor, or without image:/services:, no warning.
	for _, tc := range []struct {
		args []string
		src  string
	}{
		{[]string{"-executor", "docker", "-"}, "x:\n  image: alpine\n  services: [redis]\n  script: y\n"},
		{[]string{"-"}, "x:\n  script: y\n"},
	} {
		var out bytes.Buffer
		if code := lintWithStdin(tc.args, strings.NewReader(tc.src), &out, &out); code != 0 || strings.Contains(out.String(), "warning") {
			t.Errorf("kiln lint %v: %d %s", tc.args, code, out.String())
		}
	}
	// The default file is .gitlab-ci.yml in the current directory.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(filepath.Join(dir, "ci"))
	var out bytes.Buffer
	if code := lintWithStdin(nil, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("default file: %d %s", code, out.String())
	}
}

// TestLintPrintsEveryError: every job's problem is printed, not only the
// first (the lint API keeps GitLab's first-only answer).
func TestLintPrintsEveryError(t *testing.T) {
	src := "stages: [a, b]\njob1:\n  stage: nope\n  script: echo\njob2:\n  stage: a\n  needs: [missing]\n  script: echo\njob3:\n  stage: a\n  needs: [job4]\n  script: echo\njob4:\n  stage: b\n  script: echo\n"
	var out, errb bytes.Buffer
	if code := lintWithStdin([]string{"-"}, strings.NewReader(src), &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"error: job1 job: chosen stage nope does not exist",
		"error: job2 job: undefined need: missing",
		"error: job3 job: need job4 is not defined in current or prior stages",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	out.Reset()
	lintWithStdin([]string{"-json", "-"}, strings.NewReader(src), &out, &errb)
	if n := strings.Count(out.String(), " job: "); n != 3 {
		t.Errorf("JSON has %d errors, want 3:\n%s", n, out.String())
	}
}

// TestTriggerNamesMissingFlags: kiln trigger says which flags are missing.
func TestTriggerNamesMissingFlags(t *testing.T) {
	t.Setenv("KILN_URL", "")
	t.Setenv("KILN_TRIGGER_TOKEN", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://x", "--project", "g/p", "--token", "t"}, "kiln trigger: missing --ref\n"},
		{[]string{"--ref", "main"}, "kiln trigger: missing --url (or KILN_URL), --project, --token (or KILN_TRIGGER_TOKEN)\n"},
		{[]string{"--url", "http://x", "--project", "g/p", "--token", "t", "--ref", "main", "extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		if code := triggerCmd(tc.args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
