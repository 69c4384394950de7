package ciconfig

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for k := 0; k < 10; k++ {
			if k > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "job: {script: echo, variables: {X: *a%d}}\n", levels)
	return b.String()
}

// referenceBomb amplifies through !reference instead of aliases.
func referenceBomb(levels int) string {
	var b strings.Builder
	b.WriteString(".r0: [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, ".r%d: [", i)
		for k := 0; k < 10; k++ {
			if k > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "!reference [.r%d]", i-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "job: {script: echo, variables: {X: !reference [.r%d]}}\n", levels)
	return b.String()
}

// extendsBomb amplifies through extends of a large template.
func extendsBomb(jobs int) string {
	var b strings.Builder
	b.WriteString(".t: {script: echo, variables: {")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&b, "V%d: x, ", i)
	}
	b.WriteString("}}\n")
	for i := 0; i < jobs; i++ {
		fmt.Fprintf(&b, "j%d: {extends: .t}\n", i)
	}
	return b.String()
}

func extendsJobs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "j%d: {extends: .t}\n", i)
	}
	return b.String()
}

func plainJobs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "j%d: {script: echo}\n", i)
	}
	return b.String()
}

func TestResourceLimits(t *testing.T) {
	deepFlow := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	deepBlock := func(n int) string {
		var b strings.Builder
		b.WriteString("job:\n  script: echo\n  variables:\n")
		indent := "    "
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "%sk%d:\n", indent, i)
			indent += "  "
		}
		b.WriteString(indent + "x: y\n")
		return b.String()
	}
	manyJobs := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "j%d: {script: echo}\n", i)
		}
		return b.String()
	}
	// aliasBytes is the reported attack: one large anchored string
	// repeated through aliases (counts stay small, bytes explode).
	aliasBytes := func(size, aliases int) string {
		var b strings.Builder
		fmt.Fprintf(&b, ".big: &big %q\n", strings.Repeat("x", size))
		b.WriteString("job:\n  script: echo\n  variables:\n")
		for i := 0; i < aliases; i++ {
			fmt.Fprintf(&b, "    V%d: *big\n", i)
		}
		return b.String()
	}
	big := strings.Repeat("y", 1<<20)
	cases := []struct {
		name   string
		src    string
		limits Limits
		want   string
	}{
		{"alias byte amplification", aliasBytes(900<<10, 7000), Limits{}, msgTooBig},
		{"alias bytes above a lowered limit", aliasBytes(1000, 20), Limits{MaxExpandedBytes: 10000}, msgTooBig},
		{"nested alias bytes", "s: &s " + strings.Repeat("z", 100000) + "\na: &a [" + strings.Repeat("*s, ", 50) + "*s]\njob: {script: echo, variables: {A: [*a, *a, *a]}}\n", Limits{}, msgTooBig},
		{"extends byte amplification", ".t: {script: echo, variables: {B: " + big + "}}\n" + strings.Repeat("", 0) + extendsJobs(20), Limits{}, msgTooBig},
		{"parallel byte amplification", "job: {script: [" + big + "], parallel: 50}\n", Limits{}, msgTotalTooBig},
		{"default byte amplification", "default: {before_script: [" + big + "]}\n" + plainJobs(20), Limits{}, msgTotalTooBig},
		{"billion laughs", billionLaughs(9), Limits{}, msgTooBig},
		{"reference bomb", referenceBomb(9), Limits{}, msgTooBig},
		{"extends amplification", extendsBomb(1000), Limits{}, msgTooBig},
		{"small alias budget", billionLaughs(3), Limits{MaxAliases: 50}, msgTooBig},
		{"deep flow nesting", "job: {script: echo, variables: " + deepFlow + "}", Limits{}, msgTooBig},
		{"deep block nesting", deepBlock(150), Limits{}, msgTooBig},
		{"too large", "job: {script: echo}\n#" + strings.Repeat("x", 100), Limits{MaxBytes: 50}, msgTooBig},
		{"too many jobs", manyJobs(20), Limits{MaxJobs: 10}, "The pipeline has too many jobs (maximum is 10)"},
		{"too many parallel jobs", "a: {script: x, parallel: 200}\nb: {script: x, parallel: 200}\n", Limits{MaxJobs: 300}, "The pipeline has too many jobs (maximum is 300)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(c.src), Options{Limits: c.limits})
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			wantErr(t, msgs2(err), c.want)
		})
	}
}

func TestIncludeLimits(t *testing.T) {
	// A file including itself is included once (GitLab deduplicates).
	fs := mapFS{"a.yml": "include: a.yml\njob: {script: echo}\n"}
	cfg, err := Parse([]byte("include: a.yml\n"), Options{Files: fs})
	if err != nil || len(cfg.Jobs) != 1 {
		t.Fatalf("self include: %v", err)
	}
	// A long chain of distinct files hits MaxIncludes.
	chain := mapFS{}
	for i := 0; i < 10; i++ {
		chain[fmt.Sprintf("f%d.yml", i)] = fmt.Sprintf("include: f%d.yml\nj%d: {script: echo}\n", i+1, i)
	}
	chain["f10.yml"] = "last: {script: echo}\n"
	_, err = Parse([]byte("include: f0.yml\n"), Options{Files: chain, Limits: Limits{MaxIncludes: 5}})
	wantErr(t, msgs2(err), "Maximum of 5 nested includes are allowed!")
	cfg, err = Parse([]byte("include: f0.yml\n"), Options{Files: chain})
	if err != nil || len(cfg.Jobs) != 11 {
		t.Fatalf("chain: %v", err)
	}
	// An included YAML bomb is caught too.
	bomb := mapFS{"bomb.yml": billionLaughs(9)}
	_, err = Parse([]byte("include: bomb.yml\n"), Options{Files: bomb})
	wantErr(t, msgs2(err), msgTooBig)
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"job: {script: echo}",
		billionLaughs(4),
		"a: &a {script: x}\nb: {<<: *a, stage: build}\n",
		"x: !reference [y]\ny: !reference [x]\njob: {script: echo}",
		"job: {script: [[[a]]], parallel: {matrix: [{A: [1, 2], B: x}]}, needs: [{job: j, parallel: {matrix: [{A: 1}]}}]}",
		"job: {rules: [{if: '$A == \"b\"', when: manual}], script: x, extends: .t}\n.t: {variables: {A: b}}",
		"include: [x.yml, {local: y.yml, rules: [{if: $X}]}]\njob: {script: x}",
		"stages: [a, [b, [c]]]\nj: {stage: c, script: x, only: {refs: [/^m/], variables: [$X]}}",
		"",
		"- a\n- b",
		"job: {script: x, cache: [{key: {files: [a]}}], artifacts: {reports: {junit: a}}}",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	fs := mapFS{"x.yml": "inc: {script: x}\n", "y.yml": billionLaughs(3)}
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		cfg, err := Parse([]byte(src), Options{Files: fs})
		if err == nil {
			_, _ = cfg.Evaluate(EvalContext{Source: "push", Ref: "main", Variables: vars(map[string]string{"X": "1"}),
				ChangedFiles: func() ([]string, error) { return []string{"a"}, nil }})
			_ = Lint([]byte(src), Options{Files: fs}, nil)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Parse took %v", d)
		}
	})
}
