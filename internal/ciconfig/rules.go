package ciconfig

import (
	"fmt"
	"sort"
	"strings"
)

type ruleKind int

const (
	ruleKindJob ruleKind = iota
	ruleKindWorkflow
	ruleKindInclude
)

var ruleAllowedKeys = map[ruleKind][]string{
	ruleKindJob:      {"if", "changes", "exists", "when", "start_in", "allow_failure", "variables", "needs", "interruptible"},
	ruleKindWorkflow: {"if", "changes", "exists", "when", "variables", "auto_cancel"},
	ruleKindInclude:  {"if", "changes", "exists", "when"},
}

var ruleAllowedWhen = map[ruleKind][]string{
	ruleKindJob:      {"on_success", "on_failure", "always", "never", "manual", "delayed"},
	ruleKindWorkflow: {"always", "never"},
	ruleKindInclude:  {"never", "always"},
}

// parseRuleList reads a rules: array. loc is the entry location without
// the trailing ":rules" separator rules, e.g. "jobs:rspec". Nested arrays
// (from `- !reference [...]`) are flattened one level, as GitLab does.
func parseRuleList(v any, loc string, kind ruleKind) ([]Rule, []string) {
	list, ok := v.([]any)
	if !ok {
		return nil, []string{loc + " rules should be an array containing hashes and arrays of hashes"}
	}
	var flat []any
	for _, it := range list {
		if sub, ok := it.([]any); ok {
			flat = append(flat, sub...)
			continue
		}
		flat = append(flat, it)
	}
	rules := make([]Rule, 0, len(flat))
	var msgs []string
	for _, it := range flat {
		r, m := parseRule(it, loc+":rules:rule", kind)
		msgs = append(msgs, m...)
		rules = append(rules, r)
	}
	return rules, msgs
}

func parseRule(v any, loc string, kind ruleKind) (Rule, []string) {
	var r Rule
	var msgs []string
	m, ok := v.(*mapping)
	if !ok {
		return r, []string{loc + " config should be a hash"}
	}
	if u := unknownKeys(m, ruleAllowedKeys[kind]); u != "" {
		msgs = append(msgs, loc+" config contains unknown keys: "+u)
	}
	if x, ok := m.get("if"); ok && x != nil {
		s, isStr := x.(string)
		switch {
		case !isStr:
			msgs = append(msgs, loc+" if should be a string")
		case checkExpr(s) != nil:
			msgs = append(msgs, loc+" if invalid expression syntax")
		default:
			r.If = s
		}
	} else if ok && kind != ruleKindJob {
		msgs = append(msgs, loc+" if should be a string")
	}
	if x, ok := m.get("changes"); ok && x != nil {
		switch t := x.(type) {
		case *mapping:
			if u := unknownKeys(t, []string{"paths", "compare_to"}); u != "" {
				msgs = append(msgs, loc+":changes config contains unknown keys: "+u)
			}
			paths, ok := stringList(t.vals["paths"])
			if !ok || len(paths) == 0 {
				msgs = append(msgs, loc+":changes paths should be an array of strings")
			}
			r.Changes = paths
			if c, ok := t.get("compare_to"); ok {
				cs, isStr := c.(string)
				if !isStr {
					msgs = append(msgs, loc+":changes compare to should be a string")
				}
				r.ChangesCompareTo = cs
			}
		default:
			paths, ok := stringList(x)
			if !ok {
				msgs = append(msgs, loc+" changes should be an array or a hash")
			}
			r.Changes = paths
		}
		if r.Changes == nil {
			r.Changes = []string{}
		}
	}
	if x, ok := m.get("exists"); ok && x != nil {
		switch t := x.(type) {
		case *mapping:
			if u := unknownKeys(t, []string{"paths", "project", "ref"}); u != "" {
				msgs = append(msgs, loc+":exists config contains unknown keys: "+u)
			}
			paths, ok := stringList(t.vals["paths"])
			if !ok {
				msgs = append(msgs, loc+":exists paths should be an array of strings")
			}
			r.Exists = paths
		default:
			paths, ok := stringList(x)
			if !ok {
				msgs = append(msgs, loc+" exists should be an array of strings or a hash")
			}
			r.Exists = paths
		}
		if r.Exists == nil {
			r.Exists = []string{}
		}
	}
	if x, ok := m.get("when"); ok && x != nil {
		s, _ := x.(string)
		if !contains(ruleAllowedWhen[kind], s) {
			msgs = append(msgs, fmt.Sprintf("%s when unknown value: %v", loc, x))
		}
		r.When = s
	}
	if kind == ruleKindWorkflow || kind == ruleKindJob {
		if x, ok := m.get("variables"); ok {
			vars, vm := parseVariables(x, loc+":variables", false)
			msgs = append(msgs, vm...)
			r.Variables = vars
		}
	}
	if kind != ruleKindJob {
		return r, msgs
	}
	if x, ok := m.get("allow_failure"); ok {
		b, isBool := x.(bool)
		if !isBool {
			msgs = append(msgs, loc+" allow failure should be a boolean value")
		} else {
			r.AllowFailure = &b
		}
	}
	if x, ok := m.get("interruptible"); ok {
		b, isBool := x.(bool)
		if !isBool {
			msgs = append(msgs, loc+" interruptible should be a boolean value")
		} else {
			r.Interruptible = &b
		}
	}
	if x, ok := m.get("start_in"); ok {
		s, _ := scalarString(x)
		if _, ok := durationValue(x); !ok || r.When != "delayed" {
			if r.When != "delayed" {
				msgs = append(msgs, loc+" start in must be blank when not delayed")
			} else {
				msgs = append(msgs, loc+" start in should be a duration")
			}
		}
		r.StartIn = s
	} else if r.When == "delayed" {
		msgs = append(msgs, loc+" start in should be a duration")
	}
	if x, ok := m.get("needs"); ok {
		needs, nm := parseNeeds(x, loc+":needs")
		msgs = append(msgs, nm...)
		for _, nd := range needs {
			// rules:needs only takes needs on jobs of this pipeline.
			if nd.CrossPipeline() {
				msgs = append(msgs, loc+":needs config uses invalid types: cross_dependency")
				break
			}
		}
		r.Needs = needs
		r.NeedsSet = true
	}
	return r, msgs
}

// unknownKeys lists keys of m outside allowed, comma separated, in file
// order, or "" when there are none.
func unknownKeys(m *mapping, allowed []string) string {
	var out []string
	for _, k := range m.keys {
		if !contains(allowed, k) {
			out = append(out, k)
		}
	}
	return strings.Join(out, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stringList accepts an array of strings only.
func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// stringOrList accepts a string or an array of strings.
func stringOrList(v any) ([]string, bool) {
	if s, ok := v.(string); ok {
		return []string{s}, true
	}
	return stringList(v)
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
