package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/runner/client"
)

func TestMaskerAcrossChunkBoundaries(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"plain", []string{"s3cr3t"}, "no secrets here", "no secrets here"},
		{"single", []string{"s3cr3t"}, "pw=s3cr3t;", "pw=[MASKED];"},
		{"repeated", []string{"s3cr3t"}, "s3cr3ts3cr3t s3cr3", "[MASKED][MASKED] s3cr3"},
		{"partial at end is kept", []string{"s3cr3t"}, "value s3cr", "value s3cr"},
		{"overlapping prefix", []string{"abab"}, "aababab", "a[MASKED]ab"},
		{"longest wins", []string{"tok", "token-long"}, "x token-long tok token", "x [MASKED] [MASKED] [MASKED]en"},
		{"multibyte", []string{"pässwörd"}, "→pässwörd←", "→[MASKED]←"},
		{"no secrets", nil, "anything", "anything"},
		{"empty secret ignored", []string{""}, "abc", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every two-way split, and byte-by-byte delivery.
			for split := 0; split <= len(tt.in); split++ {
				tb := newTraceBuffer(0, tt.secrets)
				tb.Write([]byte(tt.in[:split]))
				tb.Write([]byte(tt.in[split:]))
				tb.Flush()
				if got := string(tb.Bytes()); got != tt.want {
					t.Fatalf("split at %d: got %q, want %q", split, got, tt.want)
				}
			}
			tb := newTraceBuffer(0, tt.secrets)
			for i := 0; i < len(tt.in); i++ {
				tb.Write([]byte{tt.in[i]})
			}
			tb.Flush()
			if got := string(tb.Bytes()); got != tt.want {
				t.Fatalf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaskerHoldsBackOnlyPossibleSecret(t *testing.T) {
	tb := newTraceBuffer(0, []string{"SECRETVALUE"})
	tb.Write([]byte("line one\nSECRET"))
	if got := string(tb.Bytes()); got != "line one\n" {
		t.Fatalf("before completion: %q", got)
	}
	tb.Write([]byte("VALUE!\n"))
	if got := string(tb.Bytes()); got != "line one\n[MASKED]!\n" {
		t.Fatalf("after completion: %q", got)
	}
}

func TestTraceLimit(t *testing.T) {
	tb := newTraceBuffer(10, nil)
	tb.Write([]byte("0123456"))
	tb.Write([]byte("789ABCDEF"))
	tb.Write([]byte("QQQ"))
	tb.Final("Job succeeded\n")
	got := string(tb.Bytes())
	if !strings.HasPrefix(got, "0123456789\n") || strings.Contains(got, "ABC") || strings.Contains(got, "QQQ") {
		t.Fatalf("trace not cut at limit: %q", got)
	}
	if !strings.Contains(got, "exceeded limit of 10 bytes") || !strings.HasSuffix(got, "Job succeeded\n") {
		t.Fatalf("missing note or final line: %q", got)
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"out/*.txt", "out/a.txt", true},
		{"out/*.txt", "out/sub/a.txt", false},
		{"out/**/*.txt", "out/a.txt", true},
		{"out/**/*.txt", "out/x/y/a.txt", true},
		{"**/*.log", "a/b/c.log", true},
		{"**/*.log", "c.log", true},
		{"**", "anything/at/all", true},
		{"bin", "bin", true},
		{"bin", "binary", false},
		{".", "x/y", true},
		{"out/**", "out", true},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/c", false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pat, tt.name); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.pat, tt.name, got, tt.want)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	root := "/builds/x/proj"
	tests := []struct {
		in, want string
		err      bool
	}{
		{"out/", "out", false},
		{"./a/../b", "b", false},
		{"../secret", "", true},
		{"a/../../x", "", true},
		{"/etc/passwd", "", true},
		{"/builds/x/proj/dist", "dist", false},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := normalizePattern(root, tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("normalizePattern(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestCollectFilesAndZipRoundTrip(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"out/a.txt", "out/sub/b.txt", "out/sub/c.log", "other.txt"} {
		p := filepath.Join(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.Symlink("a.txt", filepath.Join(root, "out/link"))
	files, err := collectFiles(root, []string{"out"}, []string{"**/*.log"}, []string{"other.txt"})
	if err != nil {
		t.Fatal(err)
	}
	want := "other.txt out out/a.txt out/link out/sub out/sub/b.txt"
	if got := strings.Join(files, " "); got != want {
		t.Fatalf("collectFiles = %q, want %q", got, want)
	}
	zp := filepath.Join(t.TempDir(), "a.zip")
	f, _ := os.Create(zp)
	if err := writeZip(f, root, files); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dest := t.TempDir()
	if err := extractZip(zp, dest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "out/link")); string(b) != "out/a.txt" {
		t.Fatalf("symlink not restored: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dest, "out/sub/c.log")); err == nil {
		t.Fatal("excluded file extracted")
	}
}

func TestExtractZipRefusesEscapes(t *testing.T) {
	root := t.TempDir()
	// A symlink pointing outside, as a hostile dependency might ship.
	os.Symlink("/etc", filepath.Join(root, "evil"))
	zp := filepath.Join(t.TempDir(), "a.zip")
	f, _ := os.Create(zp)
	writeZip(f, root, []string{"evil"})
	f.Close()
	if err := extractZip(zp, t.TempDir()); err == nil {
		t.Fatal("symlink escaping the destination was extracted")
	}
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "1", "B_C": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	tests := map[string]string{
		"$A-${B_C}":  "1-two",
		"pa$$word":   "pa$$word",
		"$UNKNOWN":   "$UNKNOWN",
		"${A":        "${A",
		"cost $":     "cost $",
		"x${B_C}y$A": "xtwoy1",
	}
	for in, want := range tests {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigResolution(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runner.json")
	if err := SaveFileConfig(path, FileConfig{URL: "http://file/", Token: "file-token", Concurrent: 3, BuildsDir: "/b"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", fi.Mode().Perm())
	}
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantURL   string
		wantToken string
		wantConc  int
	}{
		{"file only", nil, nil, "http://file/", "file-token", 3},
		{"env beats file", map[string]string{"KILN_RUNNER_URL": "http://env/", "KILN_RUNNER_TOKEN": "env-token"}, nil, "http://env/", "env-token", 3},
		{"flags beat env", map[string]string{"KILN_RUNNER_URL": "http://env/"}, []string{"--url", "http://flag/", "--concurrent", "5"}, "http://flag/", "file-token", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KILN_RUNNER_URL", "")
			t.Setenv("KILN_RUNNER_TOKEN", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f := newFlags("run", os.Stderr)
			if err := f.fs.Parse(append([]string{"--config", path}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			fc, _, err := f.resolve(false)
			if err != nil {
				t.Fatal(err)
			}
			if fc.URL != tt.wantURL || fc.Token != tt.wantToken || fc.Concurrent != tt.wantConc || fc.BuildsDir != "/b" {
				t.Fatalf("got %+v", fc)
			}
		})
	}
	os.WriteFile(path, []byte(`{"url":"http://x/","tokn":"typo"}`), 0o600)
	if _, err := LoadFileConfig(path); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestBuildScriptQuotesDisplay(t *testing.T) {
	s := buildScript([]string{`echo 'it''s' "$HOME"`, "if true; then\n  echo multi\nfi"})
	if !strings.HasPrefix(s, "set -eo pipefail\n") {
		t.Fatalf("missing errexit prologue:\n%s", s)
	}
	if !strings.Contains(s, `# collapsed multi-line command`) {
		t.Fatalf("multi-line command not collapsed in echo:\n%s", s)
	}
}

func TestSlotDirKeepsProtectedCheckoutsApart(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		protected *bool
		want      string
	}{{nil, "3"}, {&no, "3"}, {&yes, "3-protected"}} {
		if got := slotDir(3, client.GitInfo{Protected: tc.protected}); got != tc.want {
			t.Errorf("slotDir(3, protected=%v) = %q, want %q", tc.protected, got, tc.want)
		}
	}
}

func TestMinimalEnvironDropsOperatorSecrets(t *testing.T) {
	in := []string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC", "https_proxy=http://proxy:3128",
		"PGPASSWORD=x", "AWS_SECRET_ACCESS_KEY=y", "KILN_DATABASE=z", "DATABASE_URL=w", "SSH_AUTH_SOCK=/tmp/a", "PATHX=1"}
	got := strings.Join(MinimalEnviron(in), " ")
	want := "PATH=/usr/bin HOME=/root LANG=C.UTF-8 LC_ALL=C TZ=UTC https_proxy=http://proxy:3128"
	if got != want {
		t.Errorf("MinimalEnviron = %q, want %q", got, want)
	}
}
