package ciconfig

import (
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// processorCase is one entry of testdata/gitlab-errors/yaml_processor_errors.yml.
type processorCase struct {
	ID       string    `yaml:"id"`
	Config   string    `yaml:"config"`
	Match    string    `yaml:"match"`
	Expected yaml.Node `yaml:"expected"`
	Context  string    `yaml:"context"`
	Note     string    `yaml:"note"`
}

// processorSkips lists cases that cannot pass, with the reason.
var processorSkips = map[string]string{}

// TestGitLabProcessorErrors runs every case transcribed from GitLab's
// yaml_processor_spec and checks our messages against GitLab's.
func TestGitLabProcessorErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/gitlab-errors/yaml_processor_errors.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []processorCase
	if err := yaml.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	pass, skip, fail := 0, 0, 0
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			if reason, ok := processorSkips[c.ID]; ok {
				skip++
				t.Skip(reason)
			}
			opts := Options{}
			if strings.Contains(c.Context, "project given") {
				opts.Files = mapFS{}
			}
			errs, warnings := processorOutcome(c.Config, opts)
			if checkProcessorCase(t, c, errs, warnings) {
				pass++
			} else {
				fail++
			}
		})
	}
	t.Logf("yaml_processor_errors: %d cases, %d pass, %d skip, %d fail", len(cases), pass, skip, fail)
}

// processorOutcome parses the config and, when it is valid, creates a
// push pipeline on main, as the spec's runtime cases do.
func processorOutcome(src string, opts Options) (errs, warnings []string) {
	cfg, err := Parse([]byte(src), opts)
	if err != nil {
		var e *Errors
		if errors.As(err, &e) {
			return e.Messages, nil
		}
		return []string{err.Error()}, nil
	}
	_, err = cfg.Evaluate(EvalContext{Source: "push", Ref: "main", Variables: vars(nil)})
	if err != nil {
		errs = append(errs, err.Error())
	}
	return errs, cfg.Warnings
}

func checkProcessorCase(t *testing.T, c processorCase, errs, warnings []string) bool {
	t.Helper()
	var expected string
	var expectedList []string
	if c.Expected.Kind == yaml.SequenceNode {
		if err := c.Expected.Decode(&expectedList); err != nil {
			t.Fatal(err)
		}
	} else {
		expected = c.Expected.Value
	}
	ok := false
	switch c.Match {
	case "exact":
		for _, e := range errs {
			ok = ok || e == expected
		}
	case "regex":
		re := regexp.MustCompile(expected)
		for _, e := range errs {
			ok = ok || re.MatchString(e)
		}
	case "errors_eq":
		ok = len(errs) == 1 && errs[0] == expected
	case "errors_eq_set":
		got := append([]string(nil), errs...)
		want := append([]string(nil), expectedList...)
		sort.Strings(got)
		sort.Strings(want)
		ok = equalStrings(got, want)
	case "warning_regex":
		re := regexp.MustCompile(expected)
		for _, w := range warnings {
			ok = ok || re.MatchString(w)
		}
	default:
		t.Fatalf("unknown match mode %q", c.Match)
	}
	if !ok {
		t.Errorf("match %s: want %q%q\n got errors %q\n warnings %q", c.Match, expected, expectedList, errs, warnings)
	}
	return ok
}
