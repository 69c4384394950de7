package ciexpr

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func mapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// wantValue turns a JSON expectation (bool, string or null) into a Value.
func wantValue(t *testing.T, raw any) Value {
	t.Helper()
	switch x := raw.(type) {
	case nil:
		return Null()
	case bool:
		return Bool(x)
	case string:
		return String(x)
	}
	t.Fatalf("unsupported expectation %#v", raw)
	return Value{}
}

func describe(v Value) string {
	if v.Kind() == KindString {
		return fmt.Sprintf("string %q", v.String())
	}
	return fmt.Sprintf("%s %s", v.Kind(), v.String())
}

// TestStatementConformance runs GitLab's statement_spec cases. "evaluate"
// cases compare the raw value; "truthful" ones compare what rules:if decides
// (GitLab's truthful? turns expression errors into false).
func TestStatementConformance(t *testing.T) {
	data, err := os.ReadFile("testdata/statement_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Section    string            `json:"section"`
		Mode       string            `json:"mode"`
		Expression string            `json:"expression"`
		Expected   any               `json:"expected"`
		Variables  map[string]string `json:"variables"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 97 {
		t.Errorf("got %d statement cases, the corpus has 97", len(cases))
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d/%s/%s", i, c.Section, c.Expression), func(t *testing.T) {
			vars := mapLookup(c.Variables)
			switch c.Mode {
			case "evaluate":
				e, err := Parse(c.Expression)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				got, err := e.Eval(vars)
				if err != nil {
					t.Fatalf("Eval: %v", err)
				}
				if want := wantValue(t, c.Expected); !got.Equal(want) {
					t.Errorf("Eval = %s, want %s", describe(got), describe(want))
				}
			case "truthful":
				want, ok := c.Expected.(bool)
				if !ok {
					t.Fatalf("truthful case with non-bool expectation %#v", c.Expected)
				}
				got, err := Evaluate(c.Expression, vars)
				if got != want {
					t.Errorf("Evaluate = %v (err %v), want %v", got, err, want)
				}
				if want && err != nil {
					t.Errorf("Evaluate error: %v", err)
				}
			default:
				t.Fatalf("unknown mode %q", c.Mode)
			}
		})
	}
}

type gclCases struct {
	IfCases []struct {
		If     string            `yaml:"if"`
		Vars   map[string]string `yaml:"vars"`
		Result bool              `yaml:"result"`
		Note   string            `yaml:"note"`
	} `yaml:"if_cases"`
	Errors []struct {
		If    any    `yaml:"if"`
		Error string `yaml:"error"`
	} `yaml:"errors"`
}

func loadGCL(t *testing.T) gclCases {
	t.Helper()
	data, err := os.ReadFile("testdata/gcl_rules_cases.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c gclCases
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGCLIfCases runs gitlab-ci-local's rules:if cases; all of them describe
// GitLab behaviour.
func TestGCLIfCases(t *testing.T) {
	// Cases whose expected false comes, in GitLab, from a syntax error (which
	// rules:if treats as false): for these an error is required.
	wantErr := map[string]string{
		"true && $VAR =~ /123/": "GitLab's lexer has no boolean literal, so `true` is an unknown lexeme",
	}
	cases := loadGCL(t).IfCases
	if len(cases) != 38 {
		t.Errorf("got %d if_cases, the corpus has 38", len(cases))
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d/%s", i, c.If), func(t *testing.T) {
			got, err := Evaluate(c.If, mapLookup(c.Vars))
			if got != c.Result {
				t.Errorf("Evaluate = %v (err %v), want %v; note: %s", got, err, c.Result, c.Note)
			}
			if reason, ok := wantErr[c.If]; ok {
				if err == nil {
					t.Errorf("want a syntax error: %s", reason)
				}
			} else if err != nil {
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
}

// TestGCLErrorCases runs gitlab-ci-local's invalid rules:if cases. Skipped:
//   - `"23" =~ "1234"`: gitlab-ci-local rejects a plain-string right side,
//     GitLab does not (it is a substring test, see TestGitLabStringMatch).
//   - a non-string `if`: a config-schema check for the YAML loader; Parse
//     only ever receives strings.
func TestGCLErrorCases(t *testing.T) {
	cases := loadGCL(t).Errors
	if len(cases) != 4 {
		t.Errorf("got %d error cases, the corpus has 4", len(cases))
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d/%v", i, c.If), func(t *testing.T) {
			src, ok := c.If.(string)
			if !ok {
				t.Skipf("non-string if %#v is rejected by the config loader, not by ciexpr", c.If)
			}
			if strings.HasPrefix(c.Error, "gcl_only") {
				t.Skipf("gitlab-ci-local quirk, GitLab accepts it: %s", c.Error)
			}
			if _, err := Parse(src); err == nil {
				t.Errorf("Parse(%q) succeeded, want error (%s)", src, c.Error)
			}
		})
	}
}

// TestGitLabStringMatch pins GitLab's behaviour where gitlab-ci-local
// diverges: a right side that is not /pattern/ is scanned for the left side.
func TestGitLabStringMatch(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{`"23" =~ "1234"`, true},
		{`"1234" =~ "23"`, false},
		{`"23" !~ "1234"`, false},
		{`$UNDEFINED =~ "abc"`, true}, // "" is a substring of anything
		{`"a" =~ $UNDEFINED`, false},
		{`"a" !~ $UNDEFINED`, true},
	}
	for _, tt := range tests {
		got, err := Evaluate(tt.expr, nil)
		if err != nil || got != tt.want {
			t.Errorf("Evaluate(%s) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}
