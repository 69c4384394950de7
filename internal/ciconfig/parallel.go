package ciconfig

import (
	"encoding/json"
	"fmt"
	"strings"
)

// expandParallel turns parallel: jobs into their instances and rewrites
// needs and dependencies on them, as GitLab's Normalizer does: a need on a
// parallel job means all of its instances, and a needs:parallel:matrix
// selector names exact instances.
func (n *normalizer) expandParallel() []*Job {
	instances := map[string][]string{}
	var jobs []*Job
	total := 0
	for _, d := range n.drafts {
		// Every instance is stored with a copy of the job's definition;
		// charge the copies before making them.
		total += jobBytes(d.job) * d.instances()
		if total > n.opts.Limits.MaxTotalBytes || total < 0 {
			n.errs.add(msgTotalTooBig)
			return nil
		}
		expanded := expandDraft(d)
		if d.parallel != nil {
			for _, j := range expanded {
				instances[d.job.Name] = append(instances[d.job.Name], j.Name)
			}
		}
		jobs = append(jobs, expanded...)
		if len(jobs) > n.opts.Limits.MaxJobs {
			n.errs.add(fmt.Sprintf("The pipeline has too many jobs (maximum is %d)", n.opts.Limits.MaxJobs))
			return nil
		}
	}
	for _, j := range jobs {
		j.Needs = expandNeeds(j.Needs, instances)
		for i := range j.Rules {
			j.Rules[i].Needs = expandNeeds(j.Rules[i].Needs, instances)
		}
		if j.Dependencies != nil {
			var deps []string
			for _, dep := range j.Dependencies {
				if names, ok := instances[dep]; ok {
					deps = append(deps, names...)
				} else {
					deps = append(deps, dep)
				}
			}
			j.Dependencies = deps
		}
	}
	return jobs
}

// jobBytes is the size of a job's stored definition.
func jobBytes(j *Job) int {
	b, err := json.Marshal(j)
	if err != nil {
		return 0
	}
	return len(b)
}

// instances is the number of jobs a draft expands to.
func (d *jobDraft) instances() int {
	p := d.parallel
	if p == nil {
		return 1
	}
	if p.count > 0 {
		return p.count
	}
	n := 0
	for _, e := range p.matrix {
		n += len(e.combinations())
	}
	return n
}

func expandDraft(d *jobDraft) []*Job {
	p := d.parallel
	if p == nil {
		return []*Job{d.job}
	}
	if p.count > 0 {
		out := make([]*Job, 0, p.count)
		for i := 1; i <= p.count; i++ {
			j := cloneJob(d.job)
			j.Name = fmt.Sprintf("%s %d/%d", d.job.Name, i, p.count)
			j.ParallelIndex, j.ParallelTotal = i, p.count
			out = append(out, j)
		}
		return out
	}
	type combo struct {
		keys, values []string
	}
	var combos []combo
	for _, e := range p.matrix {
		for _, vals := range e.combinations() {
			combos = append(combos, combo{keys: e.keys, values: vals})
		}
	}
	out := make([]*Job, 0, len(combos))
	for i, c := range combos {
		j := cloneJob(d.job)
		j.Name = matrixJobName(d.job.Name, c.values)
		j.ParallelIndex, j.ParallelTotal = i+1, len(combos)
		for k, key := range c.keys {
			j.Variables = setVariable(j.Variables, Variable{Key: key, Value: c.values[k], Expand: true})
		}
		out = append(out, j)
	}
	return out
}

// matrixJobName is GitLab's "name: [v1, v2]".
func matrixJobName(base string, values []string) string {
	return base + ": [" + strings.Join(values, ", ") + "]"
}

func setVariable(vars []Variable, v Variable) []Variable {
	out := append([]Variable(nil), vars...)
	for i := range out {
		if out[i].Key == v.Key {
			out[i] = v
			return out
		}
	}
	return append(out, v)
}

func expandNeeds(needs []Need, instances map[string][]string) []Need {
	if needs == nil {
		return nil
	}
	out := make([]Need, 0, len(needs))
	for _, nd := range needs {
		switch {
		case nd.CrossPipeline():
			out = append(out, nd)
		case nd.matrix != nil:
			for _, e := range nd.matrix {
				for _, vals := range e.combinations() {
					c := nd
					c.matrix = nil
					c.Job = matrixJobName(nd.Job, vals)
					out = append(out, c)
				}
			}
		case instances[nd.Job] != nil:
			for _, name := range instances[nd.Job] {
				c := nd
				c.Job = name
				out = append(out, c)
			}
		default:
			out = append(out, nd)
		}
	}
	return out
}

// cloneJob copies a job deeply enough that instances can be changed
// independently.
func cloneJob(j *Job) *Job {
	c := *j
	c.Variables = append([]Variable(nil), j.Variables...)
	c.Needs = append([]Need(nil), j.Needs...)
	if j.Needs != nil && c.Needs == nil {
		c.Needs = []Need{}
	}
	if j.Rules != nil {
		c.Rules = make([]Rule, len(j.Rules))
		for i, r := range j.Rules {
			r.Needs = append([]Need(nil), r.Needs...)
			c.Rules[i] = r
		}
	}
	c.Dependencies = append([]string(nil), j.Dependencies...)
	if j.Dependencies != nil && c.Dependencies == nil {
		c.Dependencies = []string{}
	}
	return &c
}
