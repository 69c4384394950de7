package ciexpr

import (
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that no input makes Parse, Eval, Truthy or Expand panic,
// and that a parsed expression evaluates without error unless it misuses =~.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`$VAR`, `$VAR == "x"`, `$A =~ /^v\d+\.\d+/i && ($B || $C != null)`,
		`"a" =~ "/a/"`, `$A =~ $P`, `/a\/b/ms == null`, `${X}`, `((($A)))`,
		`'x'=~'y'||null&&$Z`, `$A = 1`, `/ab\\/`, "$$A ${B} %C%",
	} {
		f.Add(seed)
	}
	vars := mapLookup(map[string]string{
		"VAR": "x", "A": "v1.2", "B": "", "P": "/^v/", "Z": "(",
	})
	f.Fuzz(func(t *testing.T, src string) {
		out := Expand(src, vars)
		if utf8.ValidString(src) && !utf8.ValidString(out) {
			t.Errorf("Expand(%q) produced invalid UTF-8", src)
		}
		e, err := Parse(src)
		if err != nil {
			if e != nil {
				t.Errorf("Parse(%q) returned both an expression and an error", src)
			}
			return
		}
		v, evalErr := e.Eval(vars)
		_ = v.String()
		_ = v.Truthy()
		ok, truthErr := e.Truthy(vars)
		if (evalErr == nil) != (truthErr == nil) || (truthErr == nil && ok != v.Truthy()) {
			t.Errorf("Eval and Truthy disagree on %q", src)
		}
		if _, err := e.Eval(nil); err != nil {
			_ = err.Error()
		}
	})
}
