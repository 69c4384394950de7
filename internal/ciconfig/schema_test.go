package ciconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// anyFileFS answers every include with a harmless hidden job.
type anyFileFS struct{}

func (anyFileFS) ReadFile(string) ([]byte, error) {
	return []byte(".included: {script: [echo]}\n"), nil
}
func (anyFileFS) Exists([]string) (bool, error) { return true, nil }

// Positive schema fixtures that GitLab's own processor rejects: the JSON
// schema is looser than lib/gitlab/ci/config/entry in these places.
var schemaPositiveSkips = map[string]string{
	"include.yml":               "jobs with both script: and trigger: pass the schema but GitLab's Bridge entry rejects script: (jobs:childPipeline config contains unknown keys: script)",
	"rules.yml":                 "`rules-null: {rules: null}` has no script:, which the schema allows but GitLab's processor rejects (jobs rules-null config should implement the script:, run:, or trigger: keyword)",
	"needs_parallel_matrix.yml": "the fixture needs jobs (job_with_parallel_matrix...) that the file does not define; the schema cannot check references, GitLab's processor reports `undefined need`",
	"rules_needs.yml":           "`if: $var == true` passes the schema, but `true` is not a token of GitLab's expression lexer, so the processor reports `invalid expression syntax`",
}

// Negative fixtures (per top-level key) that GitLab's processor accepts:
// the schema is stricter there.
var schemaNegativeSkips = map[string]string{
	"trigger.yml/trigger-minimal-invalid-variable": "project path syntax is only checked by the schema pattern; GitLab's processor accepts any string and fails when the downstream project is not found",
	"trigger.yml/trigger-minimal-leading-slash":    "as above: project path pattern is schema-only",
	"trigger.yml/trigger-minimal-no-slash":         "as above: project path pattern is schema-only",
	"trigger.yml/trigger-minimal-trailing-slash":   "as above: project path pattern is schema-only",
	"trigger.yml/trigger-project-invalid-variable": "as above: project path pattern is schema-only",
	"trigger.yml/trigger-project-leading-slash":    "as above: project path pattern is schema-only",
	"trigger.yml/trigger-include-invalid":          "as above: project path pattern is schema-only",
	"trigger.yml/trigger-include-leading-slash":    "as above: project path pattern is schema-only",
	"trigger.yml/trigger-include-no-slash":         "as above: project path pattern is schema-only",
	"trigger.yml/trigger-include-trailing-slash":   "as above: project path pattern is schema-only",
}

// TestSchemaFixtures runs GitLab's JSON-schema fixtures through Parse.
// Positive files must parse; each top-level key of a negative file (as
// GitLab's schema spec checks them) must produce an error.
func TestSchemaFixtures(t *testing.T) {
	var posPass, posSkip, posFail, negPass, negSkip, negFail int
	root := "testdata/schema"
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".json") {
			data, err = jsonToYAML(data)
			if err != nil {
				return err
			}
		}
		base := rel[strings.LastIndex(rel, "_tests/")+len("_tests/"):]
		if strings.Contains(rel, "positive_tests") {
			t.Run("positive/"+rel, func(t *testing.T) {
				if reason, ok := schemaPositiveSkips[base]; ok {
					posSkip++
					t.Skip(reason)
				}
				_, err := Parse(data, Options{Files: anyFileFS{}})
				if err != nil {
					posFail++
					t.Errorf("want valid, got %v", err)
					return
				}
				posPass++
			})
			return nil
		}
		for _, key := range topLevelKeys(t, data) {
			name := base + "/" + key
			t.Run("negative/"+name, func(t *testing.T) {
				if reason, ok := schemaNegativeSkips[name]; ok {
					negSkip++
					t.Skip(reason)
				}
				src := singleKeyConfig(t, data, key)
				_, err := Parse(src, Options{Files: anyFileFS{}})
				if err == nil {
					negFail++
					t.Errorf("want an error for\n%s", src)
					return
				}
				negPass++
				t.Logf("error: %v", err)
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("schema positive: %d pass, %d skip, %d fail; negative keys: %d pass, %d skip, %d fail",
		posPass, posSkip, posFail, negPass, negSkip, negFail)
}

// jsonToYAML checks a JSON fixture; JSON is valid YAML, so the text is
// used as is (which also keeps key order).
func jsonToYAML(data []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return data, nil
}

func topLevelKeys(t *testing.T, data []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	m := doc.Content[0]
	for i := 0; i < len(m.Content); i += 2 {
		keys = append(keys, m.Content[i].Value)
	}
	return keys
}

// singleKeyConfig keeps one top-level key; a global keyword gets a
// trivial job next to it so that only the keyword is judged.
func singleKeyConfig(t *testing.T, data []byte, key string) []byte {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.Content[0]
	out := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			out.Content = append(out.Content, m.Content[i], m.Content[i+1])
		}
	}
	if contains(reservedKeys, key) {
		out.Content = append(out.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "schema-test-job"},
			&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Value: "script"}, {Kind: yaml.ScalarNode, Value: "echo"}}})
	}
	src, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return src
}
