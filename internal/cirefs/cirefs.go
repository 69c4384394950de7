// Package cirefs implements the refs part of GitLab CI's only/except
// policies: deciding whether a list of patterns such as
// [main, tags, /^release-.*$/, merge_requests] matches a pipeline.
package cirefs

import (
	"strings"

	"github.com/kilnci/kiln/internal/ciexpr"
)

// Pipeline is what refs matching needs to know about a pipeline.
type Pipeline struct {
	// Ref is the branch or tag name (for merge request pipelines, whatever
	// ref the pipeline runs on; names and regexps never match those).
	Ref string
	// Tag is true when Ref names a tag.
	Tag bool
	// Source is the CI_PIPELINE_SOURCE value: push, web, trigger, schedule,
	// api, external, pipeline, chat, webide, merge_request_event,
	// external_pull_request_event, parent_pipeline, ... Empty means unknown.
	Source string
	// ProjectPath is the project's full path (group/project), compared with
	// the part after @ in a pattern such as main@group/project.
	ProjectPath string
}

// mergeRequestSource is the one source whose pipelines are neither branch
// nor tag pipelines.
const mergeRequestSource = "merge_request_event"

// Match reports whether any of the patterns matches the pipeline, as
// GitLab's only/except refs policy does. Each pattern is, in this order of
// precedence:
//
//   - "tags" (a tag pipeline) or "branches" (a branch pipeline: not a tag and
//     not a merge request pipeline);
//   - a pipeline source name without its _event suffix, singular or plural:
//     pushes, web, triggers, schedules, api, external, pipelines,
//     merge_requests, external_pull_requests, parent_pipelines, chat...;
//   - for branch and tag pipelines only, a "/regex/flags" in RE2 syntax
//     matched against Ref, or else a name that must equal Ref. A regex RE2
//     cannot compile is compared as a name, so in practice never matches.
//
// Any pattern may end in @group/project, which further requires
// ProjectPath to be exactly that (used to keep jobs off forks).
func Match(patterns []string, p Pipeline) bool {
	for _, pattern := range patterns {
		if matchOne(pattern, p) {
			return true
		}
	}
	return false
}

func matchOne(pattern string, p Pipeline) bool {
	// GitLab splits at the first @, so a regex cannot contain one.
	if name, path, ok := strings.Cut(pattern, "@"); ok {
		if path != p.ProjectPath {
			return false
		}
		pattern = name
	}
	branch := !p.Tag && p.Source != mergeRequestSource
	switch {
	case pattern == "tags" && p.Tag,
		pattern == "branches" && branch:
		return true
	}
	if source := strings.TrimSuffix(p.Source, "_event"); source != "" {
		if pattern == source || pattern == pluralize(source) {
			return true
		}
		// GitLab reuses the merge_requests keyword for external merge
		// requests rather than adding a keyword of their own.
		if source == "external_merge_request" && pattern == "merge_requests" {
			return true
		}
	}
	if !branch && !p.Tag {
		return false
	}
	if re, err := ciexpr.ParseRegexp(pattern); err == nil {
		return re.MatchString(p.Ref)
	}
	return pattern == p.Ref
}

// pluralize applies the English plural rules Rails' String#pluralize uses,
// as far as pipeline source names need them (push -> pushes,
// security_orchestration_policy -> security_orchestration_policies).
func pluralize(word string) string {
	switch {
	case strings.HasSuffix(word, "s") && !strings.HasSuffix(word, "ss"):
		return word
	case strings.HasSuffix(word, "x"), strings.HasSuffix(word, "ch"),
		strings.HasSuffix(word, "ss"), strings.HasSuffix(word, "sh"):
		return word + "es"
	case strings.HasSuffix(word, "y") && len(word) > 1 && !strings.ContainsRune("aeiouy", rune(word[len(word)-2])):
		return word[:len(word)-1] + "ies"
	}
	return word + "s"
}
