package ciconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// validatePipeline runs GitLab's YamlProcessor checks on the expanded
// jobs and returns the first failure, or "".
func validatePipeline(jobs []*Job, stages []string) string {
	if all := pipelineProblems(jobs, stages); len(all) > 0 {
		return all[0]
	}
	return ""
}

// pipelineProblems is every job's first problem in file order, then a needs
// cycle: GitLab reports only the first (validatePipeline); `kiln lint`
// shows them all.
func pipelineProblems(jobs []*Job, stages []string) []string {
	stageIdx := map[string]int{}
	for i, s := range stages {
		stageIdx[s] = i
	}
	byName := map[string]*Job{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	var out []string
	for _, j := range jobs {
		if msg := jobProblem(j, stages, byName, stageIdx); msg != "" {
			out = append(out, msg)
		}
	}
	if msg := checkCycles(jobs); msg != "" {
		out = append(out, msg)
	}
	return out
}

func jobProblem(j *Job, stages []string, byName map[string]*Job, stageIdx map[string]int) string {
	if _, ok := stageIdx[j.Stage]; !ok {
		return fmt.Sprintf("%s job: chosen stage %s does not exist; available stages are %s", j.Name, j.Stage, strings.Join(stages, ", "))
	}
	for _, dep := range j.Dependencies {
		if msg := checkDependency(j, dep, "dependency", false, byName, stageIdx); msg != "" {
			return msg
		}
	}
	if msg := checkNeeds(j, j.Needs, byName, stageIdx); msg != "" {
		return msg
	}
	for _, r := range j.Rules {
		if msg := checkNeeds(j, r.Needs, byName, stageIdx); msg != "" {
			return msg
		}
	}
	return ""
}

func checkNeeds(j *Job, needs []Need, byName map[string]*Job, stageIdx map[string]int) string {
	count := map[string]int{}
	var dups []string
	for _, nd := range needs {
		if nd.CrossPipeline() {
			continue
		}
		count[nd.Job]++
		if count[nd.Job] == 2 {
			dups = append(dups, nd.Job)
		}
	}
	if len(dups) > 0 {
		return fmt.Sprintf("%s has the following needs duplicated: %s.", j.Name, strings.Join(dups, ", "))
	}
	for _, nd := range needs {
		if nd.CrossPipeline() {
			continue
		}
		if msg := checkDependency(j, nd.Job, "need", nd.Optional, byName, stageIdx); msg != "" {
			return msg
		}
	}
	return ""
}

func checkDependency(j *Job, name, kind string, optional bool, byName map[string]*Job, stageIdx map[string]int) string {
	dep, ok := byName[name]
	if !ok {
		if optional {
			return ""
		}
		return fmt.Sprintf("%s job: undefined %s: %s", j.Name, kind, name)
	}
	if stageIdx[dep.Stage] > stageIdx[j.Stage] {
		return fmt.Sprintf("%s job: %s %s is not defined in current or prior stages", j.Name, kind, name)
	}
	return ""
}

// checkCycles looks for cycles in the needs graph with Tarjan's algorithm,
// visiting jobs and needs in file order so the reported component lists
// jobs in the order Ruby's TSort does.
func checkCycles(jobs []*Job) string {
	edges := map[string][]string{}
	exists := map[string]bool{}
	for _, j := range jobs {
		exists[j.Name] = true
	}
	for _, j := range jobs {
		for _, nd := range j.Needs {
			if nd.CrossPipeline() || !exists[nd.Job] {
				continue
			}
			if nd.Job == j.Name {
				return "The pipeline has circular dependencies: self-dependency: " + j.Name
			}
			edges[j.Name] = append(edges[j.Name], nd.Job)
		}
	}
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	next := 0
	var found []string
	var visit func(v string)
	visit = func(v string) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range edges[v] {
			if found != nil {
				return
			}
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			i := len(stack) - 1
			for stack[i] != v {
				i--
			}
			comp := append([]string(nil), stack[i:]...)
			stack = stack[:i]
			for _, c := range comp {
				onStack[c] = false
			}
			if len(comp) > 1 && found == nil {
				found = comp
			}
		}
	}
	for _, j := range jobs {
		if _, seen := index[j.Name]; !seen && found == nil {
			visit(j.Name)
		}
	}
	if found == nil {
		return ""
	}
	quoted := make([]string, len(found))
	for i, s := range found {
		quoted[i] = strconv.Quote(s)
	}
	return "The pipeline has circular dependencies: topological sort failed: [" + strings.Join(quoted, ", ") + "]"
}

// stageOrder returns a stable sort of jobs by stage index, keeping file
// order within a stage.
func stageOrder(jobs []*Job, stages []string) []*Job {
	idx := map[string]int{}
	for i, s := range stages {
		idx[s] = i
	}
	out := append([]*Job(nil), jobs...)
	sort.SliceStable(out, func(a, b int) bool { return idx[out[a].Stage] < idx[out[b].Stage] })
	return out
}
