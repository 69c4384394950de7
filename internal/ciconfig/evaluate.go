package ciconfig

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kilnci/kiln/internal/ciexpr"
)

// EvalContext describes the pipeline being created.
type EvalContext struct {
	// Source is CI_PIPELINE_SOURCE: push, web, trigger, schedule, api,
	// pipeline, parent_pipeline, merge_request_event, ...
	Source      string
	Ref         string
	Tag         bool
	ProjectPath string
	// Variables is everything visible to rules: predefined, pipeline,
	// project variables and YAML globals, built by the caller with the
	// precedence it wants. Evaluate layers workflow:rules:variables and,
	// for a job's rules, the job's own variables on top, as GitLab does.
	Variables ciexpr.Lookup
	// ChangedFiles lists the files the pipeline changes; nil means
	// changes: is always true (GitLab's behaviour without a push diff).
	ChangedFiles func() ([]string, error)
	// Exists reports whether any file matches the globs; nil means
	// rules:exists never matches.
	Exists func(globs []string) (bool, error)
}

func (ctx *EvalContext) lookup() ciexpr.Lookup {
	if ctx == nil || ctx.Variables == nil {
		return func(string) (string, bool) { return "", false }
	}
	return ctx.Variables
}

// Plan is the outcome of Evaluate: the jobs the pipeline gets.
type Plan struct {
	Jobs []PlannedJob
	// WorkflowVariables are the variables of the matching workflow rule;
	// they become pipeline-level variables below job variables.
	WorkflowVariables []Variable
	// Name is workflow:name with variables expanded.
	Name string
}

// PlannedJob is a job selected for the pipeline, with rule outcomes
// applied. Its fields shadow the Job's where rules can change them.
type PlannedJob struct {
	*Job
	When                  string
	StartIn               string
	AllowFailure          bool
	AllowFailureExitCodes []int
	Interruptible         bool
	// ExtraVariables come from the matching rules:variables.
	ExtraVariables []Variable
	// Needs are the effective needs (rules:needs wins), with optional
	// needs on absent jobs and cross-pipeline needs dropped.
	Needs []Need
	// NeedsSet tells `needs: []` from no needs (stage ordering).
	NeedsSet bool
	// PipelineNeeds are the needs:pipeline entries (a child pipeline's job
	// naming a job of its parent pipeline, $PARENT_PIPELINE_ID), kept
	// apart: they do not order jobs, they pass the parent job's dotenv
	// variables.
	PipelineNeeds []Need
	// Decision says what put the job in the pipeline, for previews:
	// "rules[1]: if: $X == \"y\"", "only/except", or "always" (no rules).
	Decision string
}

// overlay returns a lookup that consults vars first, expanding their
// values against base unless they are raw.
func overlay(vars []Variable, base ciexpr.Lookup) ciexpr.Lookup {
	if len(vars) == 0 {
		return base
	}
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		val := v.Value
		if v.Expand {
			val = expandVars(val, base)
		}
		m[v.Key] = val
	}
	return func(name string) (string, bool) {
		if v, ok := m[name]; ok {
			return v, true
		}
		return base(name)
	}
}

// Evaluate decides which jobs a pipeline gets, as GitLab's pipeline
// creation does: workflow:rules first, then each job's rules or
// only/except, then needs on jobs that were left out.
func (c *Config) Evaluate(ctx EvalContext) (*Plan, error) {
	base := ctx.lookup()
	plan := &Plan{}
	if c.Workflow != nil && len(c.Workflow.Rules) > 0 {
		matched := false
		for _, r := range c.Workflow.Rules {
			ok, err := ruleMatches(r, &ctx, base)
			if err != nil {
				return nil, &PipelineError{Message: err.Error()}
			}
			if ok {
				if r.When == "never" {
					return nil, &PipelineError{Message: msgWorkflowFilter}
				}
				matched = true
				plan.WorkflowVariables = r.Variables
				break
			}
		}
		if !matched {
			return nil, &PipelineError{Message: msgWorkflowFilter}
		}
	}
	pipelineVars := overlay(plan.WorkflowVariables, base)
	if c.Workflow != nil {
		plan.Name = expandVars(c.Workflow.Name, pipelineVars)
	}

	for _, j := range c.Jobs {
		pj, ok, err := evaluateJob(j, &ctx, pipelineVars)
		if err != nil {
			return nil, &PipelineError{Message: err.Error()}
		}
		if ok {
			plan.Jobs = append(plan.Jobs, pj)
		}
	}

	present := map[string]bool{}
	for _, pj := range plan.Jobs {
		present[pj.Name] = true
	}
	for i := range plan.Jobs {
		pj := &plan.Jobs[i]
		var needs []Need
		for _, nd := range pj.Needs {
			if nd.CrossPipeline() {
				if nd.Pipeline != "" && nd.Project == "" {
					pj.PipelineNeeds = append(pj.PipelineNeeds, nd)
				}
				continue
			}
			if !present[nd.Job] {
				if nd.Optional {
					continue
				}
				return nil, &PipelineError{Message: fmt.Sprintf("'%s' job needs '%s' job, but '%s' is not in any previous stage", pj.Name, nd.Job, nd.Job)}
			}
			needs = append(needs, nd)
		}
		if pj.NeedsSet && needs == nil {
			needs = []Need{}
		}
		pj.Needs = needs
	}

	// A pipeline made only of .pre/.post jobs is not created either.
	real := false
	for _, pj := range plan.Jobs {
		if pj.Stage != ".pre" && pj.Stage != ".post" {
			real = true
			break
		}
	}
	if !real {
		return nil, &PipelineError{Message: msgNoJobs}
	}
	return plan, nil
}

func evaluateJob(j *Job, ctx *EvalContext, pipelineVars ciexpr.Lookup) (PlannedJob, bool, error) {
	pj := PlannedJob{
		Job:                   j,
		When:                  j.When,
		StartIn:               j.StartIn,
		AllowFailure:          j.AllowFailure,
		AllowFailureExitCodes: j.AllowFailureExitCodes,
		Interruptible:         j.Interruptible,
		Needs:                 j.Needs,
		NeedsSet:              j.NeedsSet,
	}
	vars := overlay(j.Variables, pipelineVars)
	if j.Rules != nil {
		for i, r := range j.Rules {
			ok, err := ruleMatches(r, ctx, vars)
			if err != nil {
				return pj, false, err
			}
			if !ok {
				continue
			}
			if r.When == "never" {
				return pj, false, nil
			}
			if r.When != "" {
				pj.When = r.When
			}
			if r.StartIn != "" {
				pj.StartIn = r.StartIn
			}
			if r.AllowFailure != nil {
				pj.AllowFailure = *r.AllowFailure
				pj.AllowFailureExitCodes = nil
			}
			if r.Interruptible != nil {
				pj.Interruptible = *r.Interruptible
			}
			if r.NeedsSet {
				pj.Needs = r.Needs
				pj.NeedsSet = true
			}
			pj.ExtraVariables = r.Variables
			pj.Decision = describeRule(i, r)
			return pj, true, nil
		}
		return pj, false, nil
	}
	only, err := policySatisfied(j.Only, ctx, vars, true)
	if err != nil || !only {
		return pj, false, err
	}
	pj.Decision = "no rules (only/except)"
	if j.Except != nil {
		except, err := policySatisfied(j.Except, ctx, vars, false)
		if err != nil || except {
			return pj, false, err
		}
	}
	return pj, true, nil
}

// policySatisfied evaluates an only:/except: block: every part given must
// hold. A block without parts holds for only: and never for except:.
func policySatisfied(p *Policy, ctx *EvalContext, vars ciexpr.Lookup, only bool) (bool, error) {
	if p == nil {
		return only, nil
	}
	parts := 0
	if p.Refs != nil {
		parts++
		if !matchRefs(p.Refs, *ctx) {
			return false, nil
		}
	}
	if len(p.Variables) > 0 {
		parts++
		any := false
		for _, e := range p.Variables {
			ok, err := evalExpr(e, vars)
			if err == nil && ok {
				any = true
				break
			}
		}
		if !any {
			return false, nil
		}
	}
	if p.Changes != nil {
		parts++
		ok, err := changesMatch(p.Changes, ctx, vars)
		if err != nil || !ok {
			return false, err
		}
	}
	if p.Kubernetes != "" {
		// Kiln has no Kubernetes integration, so it is never "active".
		return false, nil
	}
	if parts == 0 {
		return only, nil
	}
	return true, nil
}

// ruleMatches reports whether every clause of a rule holds.
func ruleMatches(r Rule, ctx *EvalContext, vars ciexpr.Lookup) (bool, error) {
	if r.If != "" {
		ok, err := evalExpr(r.If, vars)
		if err != nil || !ok {
			// GitLab treats expressions that fail at run time as false.
			return false, nil
		}
	}
	if r.Changes != nil {
		ok, err := changesMatch(r.Changes, ctx, vars)
		if err != nil || !ok {
			return false, err
		}
	}
	if r.Exists != nil {
		var globs []string
		for _, g := range r.Exists {
			g = strings.TrimPrefix(expandVars(g, vars), "/")
			if g != "" {
				globs = append(globs, g)
			}
		}
		if len(globs) == 0 || ctx.Exists == nil {
			return false, nil
		}
		ok, err := ctx.Exists(globs)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// changesMatch reports whether any changed file matches any pattern.
func changesMatch(patterns []string, ctx *EvalContext, vars ciexpr.Lookup) (bool, error) {
	if ctx.ChangedFiles == nil {
		return true, nil
	}
	files, err := ctx.ChangedFiles()
	if err != nil {
		return false, err
	}
	for _, p := range patterns {
		re := globRegexp(strings.TrimPrefix(expandVars(p, vars), "/"))
		if re == nil {
			continue
		}
		for _, f := range files {
			if re.MatchString(f) {
				return true, nil
			}
		}
	}
	return false, nil
}

// globRegexp compiles a glob with the semantics GitLab gets from Ruby's
// File.fnmatch with FNM_PATHNAME|FNM_DOTMATCH|FNM_EXTGLOB: `*` and `?`
// stay within a path segment, `**/` spans directories, {a,b} alternates.
// It is exported to tests through GlobMatch.
func globRegexp(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	depth := 0
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '*':
			if i+1 < len(glob) && glob[i+1] == '*' {
				if i+2 < len(glob) && glob[i+2] == '/' {
					b.WriteString("(?:.*/)?")
					i += 2
				} else {
					b.WriteString(".*")
					i++
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(glob[i:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := glob[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j
		case '{':
			depth++
			b.WriteString("(?:")
		case '}':
			if depth > 0 {
				depth--
				b.WriteString(")")
			} else {
				b.WriteString(`\}`)
			}
		case ',':
			if depth > 0 {
				b.WriteString("|")
			} else {
				b.WriteString(",")
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	for ; depth > 0; depth-- {
		b.WriteString(")")
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil
	}
	return re
}

// GlobMatch reports whether path matches a rules:changes / rules:exists
// glob the way GitLab matches it. FileReader implementations can use it
// for Exists.
func GlobMatch(glob, path string) bool {
	re := globRegexp(strings.TrimPrefix(glob, "/"))
	return re != nil && re.MatchString(path)
}

// describeRule names the rule that decided, as a preview shows it.
func describeRule(i int, r Rule) string {
	var parts []string
	if r.If != "" {
		parts = append(parts, "if: "+r.If)
	}
	if len(r.Changes) > 0 {
		parts = append(parts, "changes: "+strings.Join(r.Changes, ", "))
	}
	if len(r.Exists) > 0 {
		parts = append(parts, "exists: "+strings.Join(r.Exists, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "(no conditions)")
	}
	return fmt.Sprintf("rules[%d]: %s", i, strings.Join(parts, "; "))
}
