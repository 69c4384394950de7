package ciexpr

import (
	"errors"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	vars := mapLookup(map[string]string{
		"A":       "abc",
		"EMPTY":   "",
		"BLANK":   "  \t",
		"SLASHED": `/^a\/b$/`,
		"BADRE":   "/(/",
		"MULTI":   "/a/\n",
		"REF":     "a/b",
	})
	tests := []struct {
		expr string
		want bool
	}{
		{`$A`, true},
		{`$EMPTY`, false},
		{`$BLANK`, false}, // Ruby's present? treats whitespace as blank
		{`$BLANK == "  	"`, true},
		{`$NOPE`, false},
		{`$A=="abc"`, true},
		{`$A == 'abc' && $EMPTY == ""`, true},
		{`$A == "x" || $A == "abc" && $EMPTY`, false}, // && binds tighter
		{`($A == "x" || $A == "abc") && $EMPTY == ""`, true},
		{`$REF =~ $SLASHED`, true},
		{`$REF =~ /^a\/b$/`, true},
		{`$REF =~ /^A\/B$/i`, true},
		{`"a\nb" =~ /a.b/s`, false}, // no escapes in strings: that is a backslash and an n
		{`$A =~ /^ABC$/`, false},
		{`$A =~ $BADRE`, false},   // invalid pattern in a variable: plain string
		{`"(" =~ $BADRE`, true},   // ... which contains "("
		{`"/a/" =~ $MULTI`, true}, // multi-line values are plain strings too
		{`$A =~ null`, false},
		{`$A !~ null`, true},
		{`$A =~ ($EMPTY == "x")`, false},
		{`$A !~ ($EMPTY == "x")`, true},
		{`($A == "abc") =~ /^true$/`, true},
		{`/ab/`, true},
		{`/ab/ == /ab/`, true},
		{`/ab/ == "/ab/"`, false},
		{`null`, false},
		{`null == null`, true},
		{`"" == null`, false},
		{`$A == "abc" == "x"`, false}, // left-associative: (true) == "x"
		{`$A =~ /bc/ && $A !~ /zz/`, true},
		{`$A =~ /[[:alpha:]]+/`, true},
		{"$A\n&&\t$A", true},
		{`'it"s' == 'it"s'`, true},
		{`"some x / pattern" =~ /some .* \/ pattern/`, true},
		{`"n $ p" =~ /n \$ p/`, true},
		{`"a\b" =~ /a\\b/`, true},
	}
	for _, tt := range tests {
		got, err := Evaluate(tt.expr, vars)
		if err != nil {
			t.Errorf("Evaluate(%s): %v", tt.expr, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Evaluate(%s) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []string{
		`"x" =~ ("a" == "a")`,
		`"x" !~ ("a" == "a")`,
	}
	for _, src := range tests {
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%s): %v", src, err)
		}
		if got, err := e.Truthy(nil); err == nil || got {
			t.Errorf("Truthy(%s) = %v, %v; want false and an error", src, got, err)
		}
	}
	// Short-circuiting: the faulty right side is never evaluated.
	if got, err := Evaluate(`null && "x" =~ ("a" == "a")`, nil); err != nil || got {
		t.Errorf("short-circuit: got %v, %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src     string
		wantMsg string
	}{
		{``, "empty expression"},
		{`   `, "empty expression"},
		{`$INVALID = 1`, "use '=='"},
		{`${VAR} == "true"`, "${NAME} is not allowed"},
		{`$`, "variable name"},
		{`$A ==`, "operand is expected"},
		{`== $A`, "expected a value"},
		{`$A $B`, "missing operator"},
		{`($A`, "unclosed '('"},
		{`$A)`, "unmatched ')'"},
		{`()`, "expected a value"},
		{`($A $B)`, "expected ')'"},
		{`"abc`, "unterminated string"},
		{"\"a\nb\"", "end of line"},
		{`$A =~ /abc`, "unterminated regular expression"},
		{"$A =~ /a\nb/", "end of line"},
		{`$A =~ /a/`, "too short"},
		{`"test/url" =~ /test/ur/`, "unexpected character 'u'"},
		{`"/" =~ /some .* / pattern/`, "unexpected character 'p'"}, // the first unescaped slash ends it
		{`"it\"s" == 'x'`, "unexpected character 's'"},             // strings have no escapes
		{`$A =~ /^(?!master).+/`, "not a valid RE2"},
		{`$A =~ /(a)\1/`, "not a valid RE2"},
		{`$A =~ /ab/x`, "unexpected character 'x'"},
		{`true`, "unexpected character 't'"},
		{`$A & $B`, "unexpected character '&'"},
		{`$A ! $B`, "unexpected character '!'"},
		{`$A =~ é`, "unexpected character 'é'"},
		{strings.Repeat(`$A && `, 49) + `$A`, ""}, // 99 tokens: the most GitLab allows
		{strings.Repeat(`$A && `, 50), "too many tokens"},
		{strings.Repeat("(", 60) + "$A" + strings.Repeat(")", 60), "too many tokens"},
		{`"` + strings.Repeat("x", MaxLength) + `"`, "longer than"},
		{`$A =~ /` + strings.Repeat("(", 5000) + `/`, "not a valid RE2"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		name := tt.src
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if tt.wantMsg == "" {
			if err != nil {
				t.Errorf("Parse(%s): %v", name, err)
			}
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%s) error = %v, want a *SyntaxError", name, err)
			continue
		}
		if !strings.Contains(se.Error(), tt.wantMsg) {
			t.Errorf("Parse(%s) error = %q, want it to mention %q", name, se.Error(), tt.wantMsg)
		}
		if len(se.Error()) > 600 {
			t.Errorf("Parse(%s): error message is %d bytes long", name, len(se.Error()))
		}
	}
}

func TestDepthLimit(t *testing.T) {
	// Parentheses can only nest as deep as the token budget allows; the
	// parser's own depth guard must never be the reason for a panic.
	src := strings.Repeat("(", 49) + "$A" + strings.Repeat(")", 49)
	got, err := Evaluate(src, mapLookup(map[string]string{"A": "x"}))
	if err != nil || !got {
		t.Errorf("49 nested parentheses: %v, %v", got, err)
	}
}

func TestValue(t *testing.T) {
	e, err := Parse(`/ab/i`)
	if err != nil {
		t.Fatal(err)
	}
	re, err := e.Eval(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		v      Value
		kind   Kind
		str    string
		truthy bool
	}{
		{Null(), KindNull, "", false},
		{Value{}, KindNull, "", false},
		{String(""), KindString, "", false},
		{String(" \u00a0"), KindString, " \u00a0", false},
		{String("x"), KindString, "x", true},
		{Bool(true), KindBool, "true", true},
		{Bool(false), KindBool, "false", false},
		{re, KindRegexp, "/ab/i", true},
	}
	for _, tt := range tests {
		if tt.v.Kind() != tt.kind || tt.v.String() != tt.str || tt.v.Truthy() != tt.truthy {
			t.Errorf("%#v: kind %s, string %q, truthy %v; want %s, %q, %v",
				tt.v, tt.v.Kind(), tt.v.String(), tt.v.Truthy(), tt.kind, tt.str, tt.truthy)
		}
	}
	if re.Regexp() == nil || !re.Regexp().MatchString("xABx") {
		t.Errorf("regexp value does not carry its compiled, case-insensitive pattern")
	}
	if s, ok := String("x").Str(); !ok || s != "x" {
		t.Errorf("Str() = %q, %v", s, ok)
	}
	if b, ok := Bool(true).BoolValue(); !ok || !b {
		t.Errorf("BoolValue() = %v, %v", b, ok)
	}
	if !Null().IsNull() || String("").IsNull() {
		t.Errorf("IsNull wrong")
	}
	if e.String() != "/ab/i" {
		t.Errorf("Expr.String() = %q", e.String())
	}
}

func TestParseRegexp(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		match   string
		noMatch string
	}{
		{`/^ab.*/`, true, "abc", "xab"},
		{`/AB/i`, true, "xab", "xa"},
		{`/a.b/s`, true, "a\nb", "ab"},
		{`/^b$/m`, true, "a\nb", "ab"},
		{`/a+/U`, true, "aa", "b"},
		{`//`, true, "anything", ""},
		{`/a/b/`, true, "a/b", "ab"},
		{`/a\/b/`, true, "a/b", "ab"},
		{`/a/x`, false, "", ""},
		{`a/`, false, "", ""},
		{`/`, false, "", ""},
		{`abc`, false, "", ""},
		{`/(?!a)/`, false, "", ""},
		{`/(/`, false, "", ""},
		{"/a\n/", false, "", ""},
	}
	for _, tt := range tests {
		re, err := ParseRegexp(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseRegexp(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if !re.MatchString(tt.match) {
			t.Errorf("ParseRegexp(%q) does not match %q", tt.in, tt.match)
		}
		if tt.noMatch != "" && re.MatchString(tt.noMatch) {
			t.Errorf("ParseRegexp(%q) matches %q", tt.in, tt.noMatch)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := mapLookup(map[string]string{
		"A":     "alpha",
		"B_2":   "beta",
		"EMPTY": "",
		"NEST":  "$A",
	})
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain", "plain"},
		{"$A", "alpha"},
		{"${A}", "alpha"},
		{"x$A-y", "xalpha-y"},
		{"x${A}y", "xalphay"},
		{"$Ay", ""}, // the name is Ay, undefined
		{"$B_2/$A", "beta/alpha"},
		{"$UNDEFINED", ""},
		{"${UNDEFINED}", ""},
		{"$EMPTY.", "."},
		{"$$", "$"},
		{"$$A", "$A"},
		{"$$$A", "$alpha"},
		{"$$$$", "$$"},
		{"%A%", "%A%"},
		{"$", "$"},
		{"a$", "a$"},
		{"$1", "$1"},
		{"$-", "$-"},
		{"${", "${"},
		{"${}", "${}"},
		{"${A", "${A"},
		{"${1A}", "${1A}"},
		{"${A-b}", "${A-b}"},
		{"$NEST", "$A"}, // single pass: values are not expanded again
		{"é$A", "éalpha"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, vars); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Expand("$A${A}", nil); got != "" {
		t.Errorf("Expand with nil Lookup = %q, want empty", got)
	}
}
