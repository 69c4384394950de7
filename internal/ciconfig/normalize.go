package ciconfig

import (
	"fmt"
	"strings"
	"time"
)

// reservedKeys are the top-level keys that are not jobs.
var reservedKeys = []string{"default", "include", "before_script", "image", "services", "after_script", "variables", "stages", "cache", "workflow", "spec"}

// defaultKeys are the keywords default: (and inherit:default) know.
var defaultKeys = []string{"after_script", "artifacts", "before_script", "cache", "image", "interruptible", "retry", "services", "tags", "timeout", "hooks", "id_tokens", "identity"}

var jobKeys = []string{"tags", "script", "run", "image", "services", "start_in", "artifacts", "cache", "dependencies",
	"before_script", "after_script", "hooks", "coverage", "retry", "parallel", "timeout", "release", "id_tokens",
	"publish", "pages", "manual_confirmation", "identity", "secrets", "dast_configuration",
	"extends", "stage", "only", "except", "rules", "variables", "inherit", "allow_failure", "when", "needs",
	"resource_group", "environment", "interruptible"}

var bridgeKeys = []string{"trigger", "parallel", "extends", "stage", "only", "except", "rules", "variables", "inherit",
	"allow_failure", "when", "needs", "resource_group", "environment", "interruptible", "start_in", "manual_confirmation"}

var jobWhen = []string{"on_success", "on_failure", "always", "manual", "delayed"}

// maxJobTimeout is GitLab's ceiling on a job timeout (one month).
const maxJobTimeout = 30 * 24 * time.Hour

// jobDefaults holds default: values already validated and typed.
type jobDefaults struct {
	set           map[string]bool
	beforeScript  []string
	afterScript   []string
	image         *Image
	services      []Image
	cache         []Cache
	artifacts     *Artifacts
	tags          []string
	timeout       time.Duration
	retry         Retry
	interruptible bool
}

// jobDraft is a job before parallel expansion.
type jobDraft struct {
	job      *Job
	parallel *parallelSpec
}

// normalizer walks the fully merged configuration, validating every
// keyword and building the typed Config. Entry-level problems are all
// collected (as GitLab's entry tree does); pipeline-level ones (stages,
// needs, dependencies) are only checked when entries are valid, and the
// first one found is reported, as GitLab's YamlProcessor raises it.
type normalizer struct {
	root             *mapping
	opts             Options
	errs             errList
	warnings         []string
	defs             jobDefaults
	globalVars       []Variable
	stages           []string
	hasWorkflowRules bool
	workflow         *Workflow
	drafts           []*jobDraft
}

func newNormalizer(root *mapping, opts Options) *normalizer {
	return &normalizer{root: root, opts: opts, defs: jobDefaults{set: map[string]bool{}}}
}

func (n *normalizer) addAll(msgs []string) {
	for _, m := range msgs {
		n.errs.add(m)
	}
}

func (n *normalizer) run() *Config {
	n.parseStages()
	n.parseGlobalVariables()
	n.parseDefaults()
	n.parseWorkflow()
	n.parseJobs()
	cfg := &Config{Stages: n.stages, Variables: n.globalVars, Workflow: n.workflow}
	if !n.errs.empty() {
		return cfg
	}
	jobs := n.expandParallel()
	if !n.errs.empty() {
		return cfg
	}
	if n.opts.AllErrors {
		if msgs := pipelineProblems(jobs, n.stages); len(msgs) > 0 {
			n.addAll(msgs)
			return cfg
		}
	} else if msg := validatePipeline(jobs, n.stages); msg != "" {
		n.errs.add(msg)
		return cfg
	}
	cfg.Jobs = jobs
	cfg.Warnings = n.warnings
	return cfg
}

func (n *normalizer) parseStages() {
	v, ok := n.root.get("stages")
	if !ok || v == nil {
		n.stages = []string{".pre", "build", "test", "deploy", ".post"}
		return
	}
	const msg = "stages config should be an array of strings or a nested array of strings up to 10 levels deep"
	if _, isList := v.([]any); !isList {
		n.errs.add(msg)
		return
	}
	flat, msgs := parseScript(v, "stages")
	if len(msgs) > 0 {
		n.errs.add(msg)
		return
	}
	// injectEdgeStages already placed .pre and .post, but nested lists may
	// have hidden them from it.
	stages := []string{".pre"}
	seen := map[string]bool{".pre": true, ".post": true}
	for _, s := range flat {
		if !seen[s] {
			seen[s] = true
			stages = append(stages, s)
		}
	}
	n.stages = append(stages, ".post")
}

func (n *normalizer) parseGlobalVariables() {
	v, ok := n.root.get("variables")
	if !ok {
		return
	}
	vars, msgs := parseVariables(v, "variables", true)
	n.addAll(msgs)
	n.globalVars = vars
}

// parseDefaults reads default: and the legacy top-level keywords
// (image, services, before_script, after_script, cache), which act as
// defaults when default: does not set them.
func (n *normalizer) parseDefaults() {
	if dv, ok := n.root.get("default"); ok && dv != nil {
		dm, ok := dv.(*mapping)
		if !ok {
			n.errs.add("default config should be a hash")
		} else {
			if u := unknownKeys(dm, defaultKeys); u != "" {
				n.errs.add("default config contains unknown keys: " + u)
			}
			n.readDefaults(dm, "default:")
		}
	}
	legacy := newMapping()
	for _, k := range []string{"image", "services", "before_script", "after_script", "cache"} {
		if v, ok := n.root.get(k); ok && !n.defs.set[k] {
			legacy.set(k, v)
		}
	}
	n.readDefaults(legacy, "")
}

func (n *normalizer) readDefaults(m *mapping, prefix string) {
	d := &n.defs
	for _, k := range m.keys {
		v := m.vals[k]
		loc := prefix + k
		var msgs []string
		switch k {
		case "before_script":
			d.beforeScript, msgs = parseScript(v, loc)
		case "after_script":
			d.afterScript, msgs = parseScript(v, loc)
		case "image":
			d.image, msgs = parseImage(v, loc, false)
		case "services":
			d.services, msgs = parseServices(v, loc)
		case "cache":
			d.cache, msgs = parseCaches(v, loc)
		case "artifacts":
			d.artifacts, msgs = parseArtifacts(v, loc)
		case "tags":
			var ok bool
			if d.tags, ok = stringList(v); !ok {
				msgs = []string{loc + " config should be an array of strings"}
			}
		case "timeout":
			var ok bool
			if d.timeout, ok = durationValue(v); !ok {
				msgs = []string{strings.TrimSuffix(prefix, ":") + " timeout should be a duration"}
			}
		case "retry":
			d.retry, msgs = parseRetry(v, loc)
		case "interruptible":
			var ok bool
			if d.interruptible, ok = v.(bool); !ok {
				msgs = []string{strings.TrimSuffix(prefix, ":") + " interruptible should be a boolean value"}
			}
		default:
			continue
		}
		n.addAll(msgs)
		d.set[k] = true
	}
}

func (n *normalizer) parseWorkflow() {
	v, ok := n.root.get("workflow")
	if !ok || v == nil {
		return
	}
	m, ok := v.(*mapping)
	if !ok {
		n.errs.add("workflow config should be a hash")
		return
	}
	if u := unknownKeys(m, []string{"name", "rules", "auto_cancel"}); u != "" {
		n.errs.add("workflow config contains unknown keys: " + u)
	}
	wf := &Workflow{}
	if x, ok := m.get("name"); ok && x != nil {
		s, isStr := x.(string)
		if !isStr {
			n.errs.add("workflow name should be a string")
		} else if len(s) > 255 {
			n.errs.add("workflow name is too long (maximum is 255 characters)")
		}
		wf.Name = s
	}
	if x, ok := m.get("rules"); ok && x != nil {
		rules, msgs := parseRuleList(x, "workflow", ruleKindWorkflow)
		n.addAll(msgs)
		wf.Rules = rules
		n.hasWorkflowRules = true
	}
	n.workflow = wf
}

func (n *normalizer) parseJobs() {
	visible := 0
	for _, name := range n.root.keys {
		if contains(reservedKeys, name) {
			continue
		}
		v := n.root.vals[name]
		if n.root.nonString[name] {
			n.errs.add(fmt.Sprintf("jobs:%s name should be a symbol", name))
			continue
		}
		if name == "" {
			n.errs.add("jobs:job name can't be blank")
			continue
		}
		if isHidden(name) {
			continue
		}
		visible++
		if visible > n.opts.Limits.MaxJobs {
			n.errs.add(fmt.Sprintf("The pipeline has too many jobs (maximum is %d)", n.opts.Limits.MaxJobs))
			return
		}
		m, ok := v.(*mapping)
		if !ok || !(m.has("script") || m.has("run") || m.has("trigger")) {
			n.errs.add(fmt.Sprintf("jobs %s config should implement the script:, run:, or trigger: keyword", name))
			continue
		}
		if d := n.normalizeJob(name, m); d != nil {
			n.drafts = append(n.drafts, d)
		}
	}
	if visible == 0 {
		n.errs.add(msgNoVisibleJobs)
	}
}

func (n *normalizer) normalizeJob(name string, m *mapping) *jobDraft {
	loc := "jobs:" + name
	bridge := m.has("trigger")
	allowed := jobKeys
	if bridge {
		allowed = bridgeKeys
	}
	var msgs []string
	add := func(ms ...string) { msgs = append(msgs, ms...) }
	if u := unknownKeys(m, allowed); u != "" {
		add(loc + " config contains unknown keys: " + u)
	}
	j := &Job{Name: name, BaseName: name, Stage: "test", When: "on_success"}
	d := &jobDraft{job: j}

	rulesVal, hasRules := m.get("rules")
	hasRules = hasRules && rulesVal != nil
	if hasRules {
		var bad []string
		for _, k := range m.keys {
			if k == "only" || k == "except" || k == "start_in" {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			add(loc + " config key may not be used with `rules`: " + strings.Join(bad, ", "))
		}
	}

	if v, ok := m.get("script"); ok {
		s, e := parseScript(v, loc+":script")
		add(e...)
		if len(e) == 0 && (len(s) == 0 || v == "") {
			add(loc + " script can't be blank")
		}
		j.Script = s
	}
	for _, k := range []string{"before_script", "after_script"} {
		if v, ok := m.get(k); ok {
			s, e := parseScript(v, loc+":"+k)
			add(e...)
			if k == "before_script" {
				j.BeforeScript = s
			} else {
				j.AfterScript = s
			}
		}
	}
	if v, ok := m.get("stage"); ok {
		s, isStr := v.(string)
		if !isStr {
			add(loc + ":stage config should be a string")
		} else {
			j.Stage = s
		}
	}
	if v, ok := m.get("image"); ok {
		img, e := parseImage(v, loc+":image", false)
		add(e...)
		j.Image = img
	}
	if v, ok := m.get("services"); ok {
		s, e := parseServices(v, loc+":services")
		add(e...)
		j.Services = s
	}
	if v, ok := m.get("tags"); ok {
		tags, isList := stringList(v)
		if !isList {
			add(loc + ":tags config should be an array of strings")
		}
		j.Tags = tags
	}
	if v, ok := m.get("variables"); ok {
		vars, e := parseVariables(v, loc+":variables", false)
		add(e...)
		j.Variables = vars
	}
	if v, ok := m.get("when"); ok {
		s, _ := v.(string)
		allowedWhen := jobWhen
		if bridge {
			allowedWhen = []string{"on_success", "on_failure", "always", "manual"}
		}
		if !contains(allowedWhen, s) {
			add(loc + " when should be one of: " + strings.Join(allowedWhen, ", "))
		} else {
			j.When = s
		}
	}
	if v, ok := m.get("start_in"); ok && !hasRules {
		if j.When != "delayed" {
			add(loc + " start in must be blank")
		} else {
			j.StartIn, _ = scalarString(v)
		}
	}
	if j.When == "delayed" && !hasRules {
		dur, ok := durationValue(m.vals["start_in"])
		if !ok {
			add(loc + " start in should be a duration")
		} else if dur > 7*24*time.Hour {
			add(loc + " start in should not exceed the limit")
		}
	}
	if v, ok := m.get("allow_failure"); ok {
		switch t := v.(type) {
		case bool:
			j.AllowFailure = t
		case *mapping:
			if u := unknownKeys(t, []string{"exit_codes"}); u != "" {
				add(loc + ":allow_failure config contains unknown keys: " + u)
			}
			codes, ok := intOrList(t.vals["exit_codes"])
			if !ok {
				add(loc + ":allow_failure exit codes should be an array of integers or an integer")
			}
			j.AllowFailureExitCodes = codes
		default:
			add(loc + " allow failure should be a hash or a boolean value")
		}
		j.AllowFailureSet = true
	} else if j.When == "manual" {
		j.AllowFailure = true
	}
	if v, ok := m.get("needs"); ok {
		needs, e := parseNeeds(v, loc+":needs")
		add(e...)
		j.Needs = needs
		j.NeedsSet = true
		for _, nd := range needs {
			if nd.CrossPipeline() {
				n.warnings = append(n.warnings, fmt.Sprintf("%s:needs:need %s: cross-project and parent-pipeline needs are not supported and are ignored", loc, nd.Job))
			}
		}
	}
	if v, ok := m.get("dependencies"); ok {
		deps, isList := stringList(v)
		if !isList {
			add(loc + " dependencies should be an array of strings")
		}
		j.Dependencies = deps
		j.DependenciesSet = true
		if isList && len(j.Needs) > 0 {
			for _, dep := range deps {
				found := false
				for _, nd := range j.Needs {
					if nd.Job == dep && !nd.CrossPipeline() {
						found = true
					}
				}
				if !found {
					add(fmt.Sprintf("%s dependencies the %s should be part of needs", loc, dep))
				}
			}
		}
	}
	if v, ok := m.get("timeout"); ok {
		dur, ok := durationValue(v)
		if !ok {
			add(loc + " timeout should be a duration")
		} else if dur > maxJobTimeout {
			add(loc + " timeout should not exceed the limit")
		}
		j.Timeout = dur
	}
	if v, ok := m.get("retry"); ok {
		r, e := parseRetry(v, loc+":retry")
		add(e...)
		j.Retry = r
	}
	if v, ok := m.get("interruptible"); ok {
		b, isBool := v.(bool)
		if !isBool {
			add(loc + " interruptible should be a boolean value")
		}
		j.Interruptible = b
		j.InterruptibleSet = true
	}
	if v, ok := m.get("environment"); ok && v != nil {
		env, e := parseEnvironment(v, loc+":environment")
		add(e...)
		j.Environment = env
	}
	if v, ok := m.get("coverage"); ok && v != nil {
		s, _ := v.(string)
		if isRE, valid := isRegexpLiteral(s); !isRE || !valid {
			add(loc + ":coverage config must be a regular expression")
		}
		j.Coverage = s
	}
	if v, ok := m.get("artifacts"); ok && v != nil {
		a, e := parseArtifacts(v, loc+":artifacts")
		add(e...)
		j.Artifacts = a
	}
	if v, ok := m.get("cache"); ok && v != nil {
		c, e := parseCaches(v, loc+":cache")
		add(e...)
		j.Cache = c
	}
	if v, ok := m.get("resource_group"); ok && v != nil {
		s, isStr := v.(string)
		if !isStr {
			add(loc + " resource group should be a string")
		}
		j.ResourceGroup = s
	}
	if v, ok := m.get("extends"); ok {
		if _, isList := stringOrList(v); !isList {
			add(loc + " extends should be an array of strings or a string")
		}
	}
	if v, ok := m.get("parallel"); ok && v != nil {
		p, e := parseParallel(v, loc+":parallel")
		add(e...)
		d.parallel = p
	}
	if v, ok := m.get("trigger"); ok {
		tr, e := parseTrigger(v, loc+":trigger")
		add(e...)
		j.Trigger = tr
	}
	if v, ok := m.get("run"); ok && !m.has("script") {
		_ = v
		add(loc + ":run config is not supported: use script:")
	}

	if hasRules {
		rules, e := parseRuleList(rulesVal, loc, ruleKindJob)
		add(e...)
		j.Rules = rules
		if list, ok := rulesVal.([]any); ok && len(list) > 0 && !n.hasWorkflowRules {
			if last, ok := list[len(list)-1].(*mapping); ok && last.len() == 1 && last.has("when") && last.vals["when"] != "never" {
				n.warnings = append(n.warnings, loc+" may allow multiple pipelines to run for a single action due to `rules:when` clause with no `workflow:rules` - read more: https://docs.gitlab.com/ee/ci/troubleshooting.html#pipeline-warnings")
			}
		}
	} else {
		if v, ok := m.get("only"); ok {
			p, e := parsePolicy(v, loc+":only")
			add(e...)
			j.Only = p
		}
		if v, ok := m.get("except"); ok {
			p, e := parsePolicy(v, loc+":except")
			add(e...)
			j.Except = p
		}
		if j.Only == nil {
			j.Only = &Policy{Refs: []string{"branches", "tags"}}
		}
	}

	inh, e := n.parseInherit(m, loc)
	add(e...)
	n.applyDefaults(j, m, inh)
	n.addAll(msgs)
	if len(msgs) > 0 {
		return nil
	}
	return d
}

// inheritance is a parsed inherit: keyword; nil lists mean "all".
type inheritance struct {
	defaults    bool
	defaultList []string
	vars        bool
	varList     []string
}

func (n *normalizer) parseInherit(m *mapping, loc string) (inheritance, []string) {
	inh := inheritance{defaults: true, vars: true}
	v, ok := m.get("inherit")
	if !ok || v == nil {
		return inh, nil
	}
	im, ok := v.(*mapping)
	if !ok {
		return inh, []string{loc + ":inherit config should be a hash"}
	}
	var msgs []string
	if u := unknownKeys(im, []string{"default", "variables"}); u != "" {
		msgs = append(msgs, loc+":inherit config contains unknown keys: "+u)
	}
	read := func(key string, on *bool, list *[]string, allowed []string) {
		x, ok := im.get(key)
		if !ok {
			return
		}
		switch t := x.(type) {
		case bool:
			*on = t
		default:
			l, isList := stringList(t)
			if !isList {
				msgs = append(msgs, fmt.Sprintf("%s:inherit:%s config should be a boolean value or an array of strings", loc, key))
				return
			}
			for _, s := range l {
				if allowed != nil && !contains(allowed, s) {
					msgs = append(msgs, fmt.Sprintf("%s:inherit:%s config should be a boolean value or an array of strings", loc, key))
					return
				}
			}
			*list = l
		}
	}
	read("default", &inh.defaults, &inh.defaultList, defaultKeys)
	read("variables", &inh.vars, &inh.varList, nil)
	return inh, msgs
}

func (inh inheritance) inheritsDefault(key string) bool {
	if inh.defaultList != nil {
		return contains(inh.defaultList, key)
	}
	return inh.defaults
}

func (inh inheritance) inheritsVariable(key string) bool {
	if inh.varList != nil {
		return contains(inh.varList, key)
	}
	return inh.vars
}

// applyDefaults copies default: values into a job that does not set the
// keyword itself (values are replaced, never merged) and that inherits it.
func (n *normalizer) applyDefaults(j *Job, m *mapping, inh inheritance) {
	d := &n.defs
	use := func(key string) bool {
		return d.set[key] && !m.has(key) && inh.inheritsDefault(key)
	}
	if use("before_script") {
		j.BeforeScript = append([]string(nil), d.beforeScript...)
	}
	if use("after_script") {
		j.AfterScript = append([]string(nil), d.afterScript...)
	}
	if use("image") && d.image != nil {
		img := *d.image
		j.Image = &img
	}
	if use("services") {
		j.Services = append([]Image(nil), d.services...)
	}
	if use("cache") {
		j.Cache = append([]Cache(nil), d.cache...)
	}
	if use("artifacts") && d.artifacts != nil {
		a := *d.artifacts
		j.Artifacts = &a
	}
	if use("tags") {
		j.Tags = append([]string(nil), d.tags...)
	}
	if use("timeout") {
		j.Timeout = d.timeout
	}
	if use("retry") {
		j.Retry = d.retry
	}
	if use("interruptible") {
		j.Interruptible = d.interruptible
		j.InterruptibleSet = true
	}
	for _, v := range n.globalVars {
		if inh.inheritsVariable(v.Key) {
			j.GlobalVariables = append(j.GlobalVariables, v)
		}
	}
}
