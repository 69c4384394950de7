package cirefs

import (
	"fmt"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestConformance runs the corpus' only/except refs cases (GitLab's
// refs_spec, refs.rb and yaml_processor_spec).
func TestConformance(t *testing.T) {
	data, err := os.ReadFile("testdata/refs_cases.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Refs     []string `yaml:"refs"`
		Pipeline struct {
			Ref             string `yaml:"ref"`
			Tag             bool   `yaml:"tag"`
			Source          string `yaml:"source"`
			ProjectFullPath string `yaml:"project_full_path"`
		} `yaml:"pipeline"`
		Satisfied bool   `yaml:"satisfied"`
		Note      string `yaml:"note"`
	}
	if err := yaml.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 41 {
		t.Errorf("got %d cases, the corpus has 41", len(cases))
	}
	for i, c := range cases {
		p := Pipeline{
			Ref:         c.Pipeline.Ref,
			Tag:         c.Pipeline.Tag,
			Source:      c.Pipeline.Source,
			ProjectPath: c.Pipeline.ProjectFullPath,
		}
		t.Run(fmt.Sprintf("%d/%v/%s", i, c.Refs, c.Pipeline.Source), func(t *testing.T) {
			if got := Match(c.Refs, p); got != c.Satisfied {
				t.Errorf("Match(%q, %+v) = %v, want %v; note: %s", c.Refs, p, got, c.Satisfied, c.Note)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	push := Pipeline{Ref: "main", Source: "push", ProjectPath: "g/p"}
	tag := Pipeline{Ref: "v1.2.3", Tag: true, Source: "push", ProjectPath: "g/p"}
	mr := Pipeline{Ref: "refs/merge-requests/7/head", Source: "merge_request_event", ProjectPath: "g/p"}
	tests := []struct {
		name     string
		patterns []string
		p        Pipeline
		want     bool
	}{
		{"no patterns", nil, push, false},
		{"default only", []string{"branches", "tags"}, push, true},
		{"default only on tag", []string{"branches", "tags"}, tag, true},
		{"default only on MR", []string{"branches", "tags"}, mr, false},
		{"tag name", []string{"v1.2.3"}, tag, true},
		{"tag regex", []string{`/^v\d+\.\d+\.\d+$/`}, tag, true},
		{"branches on tag", []string{"branches"}, tag, false},
		{"regex flags", []string{"/^MAIN$/i"}, push, true},
		{"regex is unanchored", []string{"/ai/"}, push, true},
		{"bad regex falls back to a name", []string{"/(/"}, Pipeline{Ref: "/(/", Source: "push"}, true},
		{"backreference is not RE2", []string{`/(a)\1/`}, Pipeline{Ref: "aa", Source: "push"}, false},
		{"MR name never matches", []string{"refs/merge-requests/7/head"}, mr, false},
		{"merge_request singular", []string{"merge_request"}, mr, true},
		{"webide", []string{"webide"}, Pipeline{Ref: "main", Source: "webide"}, true},
		{"chats", []string{"chats"}, Pipeline{Ref: "main", Source: "chat"}, true},
		{"policy plural", []string{"security_orchestration_policies"}, Pipeline{Ref: "main", Source: "security_orchestration_policy"}, true},
		{"push plural of registry", []string{"container_registry_pushes"}, Pipeline{Ref: "main", Source: "container_registry_push"}, true},
		{"unknown source", []string{"pushes", "unknowns"}, Pipeline{Ref: "main"}, false},
		{"empty pattern", []string{""}, Pipeline{Source: "push"}, true},
		{"path match", []string{"/^ma/@g/p"}, push, true},
		{"path mismatch", []string{"tags@other/p"}, tag, false},
		{"first @ splits", []string{"main@g/p@x"}, push, false},
		{"any of several", []string{"nope", "/nah/", "main"}, push, true},
	}
	for _, tt := range tests {
		if got := Match(tt.patterns, tt.p); got != tt.want {
			t.Errorf("%s: Match(%q, %+v) = %v, want %v", tt.name, tt.patterns, tt.p, got, tt.want)
		}
	}
}

func TestPluralize(t *testing.T) {
	tests := map[string]string{
		"push":                               "pushes",
		"web":                                "webs",
		"api":                                "apis",
		"schedule":                           "schedules",
		"merge_request":                      "merge_requests",
		"security_orchestration_policy":      "security_orchestration_policies",
		"pipeline_execution_policy_schedule": "pipeline_execution_policy_schedules",
		"duo_workflow":                       "duo_workflows",
		"ondemand_dast_scan":                 "ondemand_dast_scans",
		"box":                                "boxes",
		"day":                                "days",
	}
	for in, want := range tests {
		if got := pluralize(in); got != want {
			t.Errorf("pluralize(%q) = %q, want %q", in, got, want)
		}
	}
}
