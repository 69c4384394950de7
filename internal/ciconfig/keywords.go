package ciconfig

import (
	"fmt"
	"strings"
)

// Parsers for individual keywords. Each takes the raw value and the entry
// location used as message prefix (for example "jobs:rspec:cache") and
// returns the typed value with GitLab-worded messages.

const maxScriptNesting = 10

// parseScript flattens a string or nested array of strings (up to ten
// levels, as GitLab allows).
func parseScript(v any, loc string) ([]string, []string) {
	var out []string
	var walk func(x any, level int) bool
	walk = func(x any, level int) bool {
		switch t := x.(type) {
		case string:
			out = append(out, t)
			return true
		case []any:
			if level >= maxScriptNesting {
				return false
			}
			for _, y := range t {
				if !walk(y, level+1) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(v, 0) {
		return nil, []string{loc + " config should be a string or a nested array of strings up to 10 levels deep"}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// parseVariables reads a variables: hash. Global variables may carry
// description and options; job and rule variables may not.
func parseVariables(v any, loc string, global bool) ([]Variable, []string) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(*mapping)
	if !ok {
		return nil, []string{loc + " config should be a hash"}
	}
	allowed := []string{"value", "expand"}
	if global {
		allowed = []string{"value", "description", "options", "expand"}
	}
	var out []Variable
	var msgs []string
	for _, k := range m.keys {
		vloc := loc + ":" + k
		x := m.vals[k]
		variable := Variable{Key: k, Expand: true}
		switch t := x.(type) {
		case string, int64, float64, nil:
			variable.Value, _ = scalarString(t)
		case *mapping:
			if u := unknownKeys(t, allowed); u != "" {
				msgs = append(msgs, vloc+" config uses invalid data keys: "+u)
				continue
			}
			if val, ok := t.get("value"); ok {
				s, ok := scalarString(val)
				if _, isBool := val.(bool); !ok || isBool {
					msgs = append(msgs, vloc+" config value must be an alphanumeric string")
				}
				variable.Value = s
			}
			if d, ok := t.get("description"); ok {
				s, isStr := d.(string)
				if !isStr {
					msgs = append(msgs, vloc+" config description must be an alphanumeric string")
				}
				variable.Description = s
			}
			if o, ok := t.get("options"); ok {
				opts, ok := stringList(o)
				if !ok {
					msgs = append(msgs, vloc+" config options should be an array of strings")
				} else if len(opts) > 0 && !contains(opts, variable.Value) {
					msgs = append(msgs, vloc+" config value must be present in options")
				}
				variable.Options = opts
			}
			if e, ok := t.get("expand"); ok {
				b, isBool := e.(bool)
				if !isBool {
					msgs = append(msgs, vloc+" config expand should be a boolean value")
				}
				variable.Expand = b || !isBool
			}
		case bool:
			msgs = append(msgs, vloc+" config value must be an alphanumeric string")
			continue
		default:
			msgs = append(msgs, "variable definition must be either a string or a hash")
			continue
		}
		out = append(out, variable)
	}
	return out, msgs
}

var imageKeys = []string{"name", "entrypoint", "docker", "pull_policy", "kubernetes"}
var serviceKeys = []string{"name", "entrypoint", "command", "alias", "variables", "docker", "pull_policy", "kubernetes"}

func parseImage(v any, loc string, service bool) (*Image, []string) {
	switch t := v.(type) {
	case string:
		return &Image{Name: t}, nil
	case *mapping:
		allowed := imageKeys
		if service {
			allowed = serviceKeys
		}
		var msgs []string
		if u := unknownKeys(t, allowed); u != "" {
			msgs = append(msgs, loc+" config contains unknown keys: "+u)
		}
		img := &Image{}
		name, ok := t.get("name")
		if s, isStr := name.(string); isStr && s != "" {
			img.Name = s
		} else if !ok || name == nil {
			msgs = append(msgs, loc+" config missing required keys: name")
		} else {
			msgs = append(msgs, loc+" name should be a string")
		}
		if e, ok := t.get("entrypoint"); ok {
			list, ok := stringList(e)
			if !ok {
				msgs = append(msgs, loc+" entrypoint should be an array of strings")
			}
			img.Entrypoint = list
		}
		if c, ok := t.get("command"); ok {
			list, ok := stringList(c)
			if !ok {
				msgs = append(msgs, loc+" command should be an array of strings")
			}
			img.Command = list
		}
		if a, ok := t.get("alias"); ok {
			s, isStr := a.(string)
			if !isStr {
				msgs = append(msgs, loc+" alias should be a string")
			}
			img.Alias = s
		}
		if p, ok := t.get("pull_policy"); ok {
			list, ok := stringOrList(p)
			if !ok {
				msgs = append(msgs, loc+" pull_policy should be an array of strings or a string")
			}
			img.PullPolicy = list
		}
		if service {
			if v, ok := t.get("variables"); ok {
				vars, m := parseVariables(v, loc+":variables", false)
				msgs = append(msgs, m...)
				img.Variables = vars
			}
		}
		return img, msgs
	}
	return nil, []string{loc + " config should be a hash or a string"}
}

func parseServices(v any, loc string) ([]Image, []string) {
	list, ok := v.([]any)
	if !ok {
		return nil, []string{loc + " config should be a array"}
	}
	var out []Image
	var msgs []string
	for _, it := range list {
		img, m := parseImage(it, loc+":service", true)
		msgs = append(msgs, m...)
		if img != nil {
			out = append(out, *img)
		}
	}
	if out == nil {
		out = []Image{}
	}
	return out, msgs
}

var cacheKeys = []string{"key", "paths", "untracked", "policy", "when", "fallback_keys", "unprotect"}

func parseCaches(v any, loc string) ([]Cache, []string) {
	if list, ok := v.([]any); ok {
		if len(list) > 4 {
			return nil, []string{loc + " config no more than 4 caches can be created"}
		}
		var out []Cache
		var msgs []string
		for _, it := range list {
			c, m := parseCache(it, loc)
			msgs = append(msgs, m...)
			out = append(out, c)
		}
		if out == nil {
			out = []Cache{}
		}
		return out, msgs
	}
	c, msgs := parseCache(v, loc)
	return []Cache{c}, msgs
}

func parseCache(v any, loc string) (Cache, []string) {
	c := Cache{Policy: "pull-push", When: "on_success"}
	m, ok := v.(*mapping)
	if !ok {
		return c, []string{loc + " config should be a hash"}
	}
	var msgs []string
	if u := unknownKeys(m, cacheKeys); u != "" {
		msgs = append(msgs, loc+" config contains unknown keys: "+u)
	}
	if k, ok := m.get("key"); ok {
		switch t := k.(type) {
		case string:
			c.Key = t
		case *mapping:
			kloc := loc + ":key"
			if u := unknownKeys(t, []string{"files", "prefix"}); u != "" {
				msgs = append(msgs, kloc+" config contains unknown keys: "+u)
			}
			files, has := t.get("files")
			if !has {
				msgs = append(msgs, kloc+" config missing required keys: files")
			} else if list, ok := stringList(files); !ok {
				msgs = append(msgs, kloc+":files config should be an array of strings")
			} else if len(list) == 0 {
				msgs = append(msgs, kloc+":files config requires at least 1 item")
			} else if len(list) > 2 {
				msgs = append(msgs, kloc+":files config has too many items (maximum is 2)")
			} else {
				c.KeyFiles = list
			}
			if p, ok := t.get("prefix"); ok {
				s, isStr := p.(string)
				if !isStr {
					msgs = append(msgs, kloc+":prefix config should be a string or symbol")
				}
				c.KeyPrefix = s
			}
		default:
			msgs = append(msgs, loc+":key should be a hash, a string or a symbol")
		}
	}
	if p, ok := m.get("paths"); ok {
		list, ok := stringList(p)
		if !ok {
			msgs = append(msgs, loc+":paths config should be an array of strings")
		}
		c.Paths = list
	}
	if u, ok := m.get("untracked"); ok {
		b, isBool := u.(bool)
		if !isBool {
			msgs = append(msgs, loc+":untracked config should be a boolean value")
		}
		c.Untracked = b
	}
	if u, ok := m.get("unprotect"); ok {
		b, isBool := u.(bool)
		if !isBool {
			msgs = append(msgs, loc+":unprotect config should be a boolean value")
		}
		c.Unprotect = b
	}
	if p, ok := m.get("policy"); ok {
		s, _ := p.(string)
		if !contains([]string{"pull-push", "push", "pull"}, s) && !strings.HasPrefix(s, "$") {
			msgs = append(msgs, loc+":policy config should be a variable or one of: pull-push, push, pull")
		}
		c.Policy = s
	}
	if w, ok := m.get("when"); ok {
		s, _ := w.(string)
		if !contains([]string{"on_success", "on_failure", "always"}, s) {
			msgs = append(msgs, loc+":when config should be one of on_success, on_failure or always")
		}
		c.When = s
	}
	if f, ok := m.get("fallback_keys"); ok {
		list, ok := stringList(f)
		if !ok {
			msgs = append(msgs, loc+":fallback_keys config should be an array of strings")
		}
		c.FallbackKeys = list
	}
	return c, msgs
}

var artifactsKeys = []string{"name", "untracked", "paths", "exclude", "expose_as", "when", "expire_in", "reports", "public", "access"}

func parseArtifacts(v any, loc string) (*Artifacts, []string) {
	m, ok := v.(*mapping)
	if !ok {
		return nil, []string{loc + " config should be a hash"}
	}
	a := &Artifacts{When: "on_success"}
	var msgs []string
	if u := unknownKeys(m, artifactsKeys); u != "" {
		msgs = append(msgs, loc+" config contains unknown keys: "+u)
	}
	if x, ok := m.get("name"); ok {
		s, isStr := x.(string)
		if !isStr {
			msgs = append(msgs, loc+" name should be a string")
		}
		a.Name = s
	}
	if x, ok := m.get("untracked"); ok {
		b, isBool := x.(bool)
		if !isBool {
			msgs = append(msgs, loc+" untracked should be a boolean value")
		}
		a.Untracked = b
	}
	if x, ok := m.get("paths"); ok {
		list, ok := stringList(x)
		if !ok {
			msgs = append(msgs, loc+" paths should be an array of strings")
		}
		a.Paths = list
	}
	if x, ok := m.get("exclude"); ok {
		list, ok := stringList(x)
		if !ok {
			msgs = append(msgs, loc+" exclude should be an array of strings")
		}
		a.Exclude = list
	}
	if x, ok := m.get("expose_as"); ok {
		s, isStr := x.(string)
		if !isStr {
			msgs = append(msgs, loc+" expose as should be a string")
		}
		a.ExposeAs = s
	}
	if x, ok := m.get("public"); ok {
		b, isBool := x.(bool)
		if !isBool {
			msgs = append(msgs, loc+" public should be a boolean value")
		}
		a.Public = &b
	}
	if x, ok := m.get("when"); ok {
		s, _ := x.(string)
		if !contains([]string{"on_success", "on_failure", "always"}, s) {
			msgs = append(msgs, loc+" when should be one of: on_success, on_failure, always")
		}
		a.When = s
	}
	if x, ok := m.get("expire_in"); ok {
		s, _ := scalarString(x)
		if _, ok := durationValue(x); !ok && s != "never" {
			msgs = append(msgs, loc+" expire in should be a duration")
		}
		a.ExpireIn = s
	}
	if x, ok := m.get("reports"); ok {
		rm, ok := x.(*mapping)
		if !ok {
			msgs = append(msgs, loc+":reports config should be a hash")
		} else {
			a.Reports = map[string][]string{}
			for _, k := range rm.keys {
				switch k {
				case "coverage_report":
					// {coverage_format, path} rather than paths.
					if cm, ok := rm.vals[k].(*mapping); ok {
						p, _ := cm.vals["path"].(string)
						a.Reports[k] = []string{p}
					}
					continue
				}
				list, ok := stringOrList(rm.vals[k])
				if !ok {
					msgs = append(msgs, fmt.Sprintf("%s:reports %s should be an array of strings or a string", loc, k))
				}
				a.Reports[k] = list
			}
		}
	}
	return a, msgs
}

var environmentKeys = []string{"name", "url", "action", "on_stop", "auto_stop_in", "kubernetes", "deployment_tier"}

func parseEnvironment(v any, loc string) (*Environment, []string) {
	switch t := v.(type) {
	case string:
		return &Environment{Name: t, Action: "start"}, nil
	case *mapping:
		var msgs []string
		if u := unknownKeys(t, environmentKeys); u != "" {
			msgs = append(msgs, loc+" config contains unknown keys: "+u)
		}
		env := &Environment{Action: "start"}
		if n, ok := t.get("name"); !ok || n == nil {
			msgs = append(msgs, loc+" name can't be blank")
		} else if s, ok := n.(string); !ok {
			msgs = append(msgs, loc+" name has to be a string")
		} else {
			env.Name = s
		}
		str := func(key, label string) string {
			x, ok := t.get(key)
			if !ok || x == nil {
				return ""
			}
			s, isStr := x.(string)
			if !isStr {
				msgs = append(msgs, loc+" "+label+" should be a string")
			}
			return s
		}
		env.URL = str("url", "url")
		if a := str("action", "action"); a != "" {
			if !contains([]string{"start", "prepare", "stop", "verify", "access"}, a) {
				msgs = append(msgs, loc+" action should be start, stop, prepare, verify, or access")
			}
			env.Action = a
		}
		env.OnStop = str("on_stop", "on stop")
		env.AutoStopIn = str("auto_stop_in", "auto stop in")
		env.DeploymentTier = str("deployment_tier", "deployment tier")
		return env, msgs
	}
	return nil, []string{loc + " config should be a hash or a string"}
}

var retryWhen = []string{"always", "unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
	"runner_system_failure", "runner_unsupported", "stale_schedule", "job_execution_timeout", "archived_failure",
	"unmet_prerequisites", "scheduler_failure", "data_integrity_failure"}

func parseRetry(v any, loc string) (Retry, []string) {
	checkMax := func(x any, what string) (int, []string) {
		n, ok := x.(int64)
		if !ok {
			return 0, []string{loc + " " + what + " must be an integer"}
		}
		if n < 0 {
			return 0, []string{loc + " " + what + " must be greater than or equal to 0"}
		}
		if n > 2 {
			return 0, []string{loc + " " + what + " must be less than or equal to 2"}
		}
		return int(n), nil
	}
	switch t := v.(type) {
	case int64:
		n, msgs := checkMax(t, "config")
		return Retry{Max: n}, msgs
	case *mapping:
		var r Retry
		var msgs []string
		if u := unknownKeys(t, []string{"max", "when", "exit_codes"}); u != "" {
			msgs = append(msgs, loc+" config contains unknown keys: "+u)
		}
		if x, ok := t.get("max"); ok {
			n, m := checkMax(x, "max")
			msgs = append(msgs, m...)
			r.Max = n
		}
		if x, ok := t.get("when"); ok {
			list, ok := stringOrList(x)
			if !ok {
				msgs = append(msgs, loc+" when should be an array of strings or a string")
			}
			var bad []string
			for _, w := range list {
				if !contains(retryWhen, w) {
					bad = append(bad, w)
				}
			}
			if len(bad) > 0 {
				msgs = append(msgs, loc+" when contains unknown values: "+strings.Join(bad, ", "))
			}
			r.When = list
		}
		if x, ok := t.get("exit_codes"); ok {
			codes, ok := intOrList(x)
			if !ok {
				msgs = append(msgs, loc+" exit codes should be an array of integers or an integer")
			}
			r.ExitCodes = codes
		}
		return r, msgs
	}
	return Retry{}, []string{loc + " config has to be either an integer or a hash"}
}

func intOrList(v any) ([]int, bool) {
	if n, ok := v.(int64); ok {
		return []int{int(n)}, true
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]int, 0, len(list))
	for _, x := range list {
		n, ok := x.(int64)
		if !ok {
			return nil, false
		}
		out = append(out, int(n))
	}
	return out, true
}

// matrixEntry is one hash of parallel:matrix (or of a needs:parallel
// selector), with values in file order.
type matrixEntry struct {
	keys   []string
	values [][]string
}

// combinations expands the entry into its permutations, first key
// outermost, as GitLab orders matrix jobs.
func (e matrixEntry) combinations() [][]string {
	out := [][]string{{}}
	for _, vals := range e.values {
		var next [][]string
		for _, prefix := range out {
			for _, v := range vals {
				next = append(next, append(append([]string(nil), prefix...), v))
			}
		}
		out = next
	}
	return out
}

const maxParallel = 200

func parseMatrix(v any, loc string) ([]matrixEntry, []string) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, []string{loc + " config should be an array of hashes"}
	}
	var out []matrixEntry
	total := 0
	for _, it := range list {
		m, ok := it.(*mapping)
		if !ok || m.len() == 0 {
			return nil, []string{loc + " config should be an array of hashes"}
		}
		var e matrixEntry
		n := 1
		for _, k := range m.keys {
			var vals []string
			switch t := m.vals[k].(type) {
			case []any:
				for _, x := range t {
					s, ok := scalarString(x)
					if _, isBool := x.(bool); !ok || isBool || x == nil {
						return nil, []string{loc + " config should be an array of hashes with string or array of strings values"}
					}
					vals = append(vals, s)
				}
			default:
				s, ok := scalarString(t)
				if _, isBool := t.(bool); !ok || isBool || t == nil {
					return nil, []string{loc + " config should be an array of hashes with string or array of strings values"}
				}
				vals = []string{s}
			}
			if len(vals) == 0 {
				return nil, []string{loc + " config should be an array of hashes with string or array of strings values"}
			}
			e.keys = append(e.keys, k)
			e.values = append(e.values, vals)
			n *= len(vals)
			if n > maxParallel {
				break
			}
		}
		total += n
		if total > maxParallel {
			return nil, []string{fmt.Sprintf("%s config generates too many jobs (maximum is %d)", loc, maxParallel)}
		}
		out = append(out, e)
	}
	return out, nil
}

// parallelSpec is a parsed parallel: keyword.
type parallelSpec struct {
	count  int
	matrix []matrixEntry
}

func parseParallel(v any, loc string) (*parallelSpec, []string) {
	switch t := v.(type) {
	case int64:
		if t < 1 {
			return nil, []string{loc + " config must be greater than or equal to 1"}
		}
		if t > maxParallel {
			return nil, []string{fmt.Sprintf("%s config must be less than or equal to %d", loc, maxParallel)}
		}
		return &parallelSpec{count: int(t)}, nil
	case *mapping:
		if u := unknownKeys(t, []string{"matrix"}); u != "" {
			return nil, []string{loc + " config contains unknown keys: " + u}
		}
		mv, ok := t.get("matrix")
		if !ok {
			return nil, []string{loc + " config missing required keys: matrix"}
		}
		entries, msgs := parseMatrix(mv, loc+":matrix")
		if len(msgs) > 0 {
			return nil, msgs
		}
		return &parallelSpec{matrix: entries}, nil
	}
	return nil, []string{loc + " should be an integer or a hash"}
}

// needSpec is a parsed needs: entry before parallel expansion.
type needSpec struct {
	Need
	matrix []matrixEntry
}

var needKeys = []string{"job", "artifacts", "optional", "parallel", "pipeline", "project", "ref"}

func parseNeeds(v any, loc string) ([]Need, []string) {
	specs, msgs := parseNeedSpecs(v, loc)
	out := make([]Need, 0, len(specs))
	for _, s := range specs {
		n := s.Need
		n.matrix = s.matrix
		out = append(out, n)
	}
	return out, msgs
}

func parseNeedSpecs(v any, loc string) ([]needSpec, []string) {
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case *mapping:
		items = []any{t}
	default:
		return nil, []string{loc + " config can only be a hash or an array"}
	}
	var out []needSpec
	var msgs []string
	for _, it := range items {
		nloc := loc + ":need"
		switch t := it.(type) {
		case string:
			out = append(out, needSpec{Need: Need{Job: t, Artifacts: true}})
		case *mapping:
			if u := unknownKeys(t, needKeys); u != "" {
				msgs = append(msgs, nloc+" config contains unknown keys: "+u)
				continue
			}
			n := needSpec{Need: Need{Artifacts: true}}
			job, ok := t.get("job")
			if s, isStr := job.(string); isStr && s != "" {
				n.Job = s
			} else if !ok || job == nil {
				msgs = append(msgs, nloc+" config missing required keys: job")
				continue
			} else {
				msgs = append(msgs, nloc+" job should be a string")
				continue
			}
			boolField := func(key string, dst *bool) {
				if x, ok := t.get(key); ok {
					b, isBool := x.(bool)
					if !isBool {
						msgs = append(msgs, nloc+" "+key+" should be a boolean value")
						return
					}
					*dst = b
				}
			}
			boolField("artifacts", &n.Artifacts)
			boolField("optional", &n.Optional)
			strField := func(key string, dst *string) {
				if x, ok := t.get(key); ok {
					s, isStr := x.(string)
					if !isStr {
						msgs = append(msgs, nloc+" "+key+" should be a string")
						return
					}
					*dst = s
				}
			}
			strField("project", &n.Project)
			strField("ref", &n.Ref)
			strField("pipeline", &n.Pipeline)
			if n.Project != "" && n.Ref == "" {
				msgs = append(msgs, nloc+" config missing required keys: ref")
			}
			if p, ok := t.get("parallel"); ok {
				pm, ok := p.(*mapping)
				if !ok {
					msgs = append(msgs, nloc+":parallel should be a hash")
					continue
				}
				if u := unknownKeys(pm, []string{"matrix"}); u != "" {
					msgs = append(msgs, nloc+":parallel config contains unknown keys: "+u)
					continue
				}
				entries, m := parseMatrix(pm.vals["matrix"], nloc+":parallel:matrix")
				msgs = append(msgs, m...)
				n.matrix = entries
			}
			out = append(out, n)
		default:
			msgs = append(msgs, nloc+" config must be a string or a hash")
		}
	}
	if out == nil {
		out = []needSpec{}
	}
	return out, msgs
}

var triggerKeys = []string{"project", "branch", "strategy", "forward", "include", "inputs"}

func parseTrigger(v any, loc string) (*Trigger, []string) {
	tr := &Trigger{}
	tr.Forward.YAMLVariables = true
	switch t := v.(type) {
	case string:
		if t == "" {
			return nil, []string{loc + " config can't be blank"}
		}
		tr.Project = t
		return tr, nil
	case *mapping:
		var msgs []string
		if u := unknownKeys(t, triggerKeys); u != "" {
			msgs = append(msgs, loc+" config contains unknown keys: "+u)
		}
		str := func(key string) string {
			x, ok := t.get(key)
			if !ok {
				return ""
			}
			s, isStr := x.(string)
			if !isStr {
				msgs = append(msgs, loc+" "+key+" should be a string")
			}
			return s
		}
		tr.Project = str("project")
		if t.has("project") && tr.Project == "" {
			msgs = append(msgs, loc+" project can't be blank")
		}
		tr.Branch = str("branch")
		tr.Strategy = str("strategy")
		if tr.Strategy != "" && tr.Strategy != "depend" && tr.Strategy != "mirror" {
			msgs = append(msgs, loc+" strategy should be depend or mirror")
		}
		if t.has("project") && t.has("include") {
			msgs = append(msgs, loc+" config contains unknown keys: include")
		}
		if !t.has("project") && !t.has("include") {
			msgs = append(msgs, loc+" config missing required keys: project or include")
		}
		if t.has("branch") && !t.has("project") {
			msgs = append(msgs, loc+" config contains unknown keys: branch")
		}
		if f, ok := t.get("forward"); ok {
			fm, ok := f.(*mapping)
			if !ok {
				msgs = append(msgs, loc+":forward config should be a hash")
			} else {
				if u := unknownKeys(fm, []string{"yaml_variables", "pipeline_variables"}); u != "" {
					msgs = append(msgs, loc+":forward config contains unknown keys: "+u)
				}
				if b, ok := fm.vals["yaml_variables"].(bool); ok {
					tr.Forward.YAMLVariables = b
				}
				if b, ok := fm.vals["pipeline_variables"].(bool); ok {
					tr.Forward.PipelineVariables = b
				}
			}
		}
		if inc, ok := t.get("include"); ok {
			msgs = append(msgs, parseTriggerInclude(inc, loc+":include", tr)...)
		}
		if in, ok := t.get("inputs"); ok {
			im, isMap := in.(*mapping)
			switch {
			case !isMap:
				msgs = append(msgs, loc+":inputs config should be a hash")
			case !t.has("project"):
				msgs = append(msgs, loc+":inputs can only be used with trigger:project")
			case im.len() > MaxInputs:
				msgs = append(msgs, fmt.Sprintf("%s:inputs too many inputs: %d given, at most %d allowed", loc, im.len(), MaxInputs))
			default:
				tr.Inputs = map[string]any{}
				for _, k := range im.keys {
					tr.Inputs[k] = plain(im.vals[k])
				}
			}
		}
		return tr, msgs
	}
	return nil, []string{loc + " should be a hash or a string"}
}

func parseTriggerInclude(v any, loc string, tr *Trigger) []string {
	var items []any
	switch t := v.(type) {
	case string:
		tr.Include = append(tr.Include, strings.TrimPrefix(t, "/"))
		return nil
	case []any:
		items = t
	default:
		items = []any{t}
	}
	if len(items) > 3 {
		return []string{loc + " config is too long (maximum is 3)"}
	}
	var msgs []string
	for _, it := range items {
		switch t := it.(type) {
		case string:
			tr.Include = append(tr.Include, strings.TrimPrefix(t, "/"))
		case *mapping:
			switch {
			case t.has("local"):
				s, _ := t.vals["local"].(string)
				s = strings.TrimPrefix(s, "/")
				tr.Include = append(tr.Include, s)
				if in, ok := t.get("inputs"); ok {
					im, isMap := in.(*mapping)
					switch {
					case !isMap:
						msgs = append(msgs, loc+":inputs config should be a hash")
					case im.len() > MaxInputs:
						msgs = append(msgs, fmt.Sprintf("%s:inputs too many inputs: %d given, at most %d allowed", loc, im.len(), MaxInputs))
					default:
						if tr.IncludeInputs == nil {
							tr.IncludeInputs = map[string]map[string]any{}
						}
						tr.IncludeInputs[s] = map[string]any{}
						for _, k := range im.keys {
							tr.IncludeInputs[s][k] = plain(im.vals[k])
						}
					}
				}
			case t.has("artifact"):
				a, _ := t.vals["artifact"].(string)
				j, _ := t.vals["job"].(string)
				if j == "" {
					msgs = append(msgs, loc+" config must specify the job where to fetch the artifact from")
					continue
				}
				tr.IncludeArtifacts = append(tr.IncludeArtifacts, TriggerArtifact{Artifact: a, Job: j})
			case t.has("project"):
				p, _ := t.vals["project"].(string)
				f, _ := t.vals["file"].(string)
				r, _ := t.vals["ref"].(string)
				if f == "" {
					msgs = append(msgs, loc+" config must specify the file where to fetch the config from")
					continue
				}
				if p == "" {
					msgs = append(msgs, loc+" config must specify the project where to fetch the config from")
					continue
				}
				tr.IncludeProjects = append(tr.IncludeProjects, TriggerProjectFile{Project: p, File: f, Ref: r})
			case t.has("template"), t.has("remote"), t.has("component"):
				// Accepted by GitLab; Kiln cannot fetch them, which the
				// bridge job reports when it runs.
			default:
				msgs = append(msgs, loc+" config should be a hash or a string")
			}
		default:
			msgs = append(msgs, loc+" config should be a hash or a string")
		}
	}
	return msgs
}

// parsePolicy reads only: or except:.
func parsePolicy(v any, loc string) (*Policy, []string) {
	refsError := loc + " config should be an array of strings or regular expressions using re2 syntax"
	checkRefs := func(list []string) bool {
		for _, r := range list {
			if isRE, valid := isRegexpLiteral(r); isRE && !valid && strings.HasSuffix(r, "/") {
				return false
			}
		}
		return true
	}
	switch t := v.(type) {
	case nil:
		return nil, nil
	case []any:
		list, ok := stringList(t)
		if !ok || !checkRefs(list) {
			return nil, []string{refsError}
		}
		return &Policy{Refs: list}, nil
	case *mapping:
		var msgs []string
		if u := unknownKeys(t, []string{"refs", "variables", "changes", "kubernetes"}); u != "" {
			msgs = append(msgs, loc+" config contains unknown keys: "+u)
		}
		p := &Policy{}
		if x, ok := t.get("refs"); ok {
			list, ok := stringList(x)
			if !ok || !checkRefs(list) {
				msgs = append(msgs, loc+" refs should be an array of strings or regular expressions using re2 syntax")
			}
			p.Refs = list
		}
		if x, ok := t.get("variables"); ok {
			list, ok := stringList(x)
			if !ok {
				msgs = append(msgs, loc+" variables should be an array of strings")
			} else {
				for _, e := range list {
					if checkExpr(e) != nil {
						msgs = append(msgs, loc+" variables invalid expression syntax")
						break
					}
				}
			}
			p.Variables = list
		}
		if x, ok := t.get("changes"); ok {
			if cm, isMap := x.(*mapping); isMap {
				x = cm.vals["paths"]
			}
			list, ok := stringList(x)
			if !ok {
				msgs = append(msgs, loc+" changes should be an array of strings")
			}
			p.Changes = list
		}
		if x, ok := t.get("kubernetes"); ok {
			s, _ := x.(string)
			if s != "active" {
				msgs = append(msgs, loc+" kubernetes unknown value: "+fmt.Sprint(x))
			}
			p.Kubernetes = s
		}
		return p, msgs
	}
	return nil, []string{loc + " has to be either an array of conditions or a hash"}
}
