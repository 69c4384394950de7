// Package pipeline creates pipelines from requests (push, API, web,
// trigger, schedule, downstream) through one entry point, Engine.Create, and
// moves them through GitLab's state machine (package state) as jobs finish.
//
// It sits between the edges: it uses the store's Go API and a repository
// reader, but writes no SQL and serves no HTTP.
package pipeline

import (
	"encoding/json"

	"github.com/kilnci/kiln/internal/ciconfig"
)

// Var is a variable as a job will see it before predefined and project
// variables are layered on.
type Var struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Raw   bool   `json:"raw,omitempty"`
	File  bool   `json:"file,omitempty"`
}

// JobSpec is what the engine stores with each job: everything a runner
// payload or a bridge needs, frozen at pipeline creation.
type JobSpec struct {
	Script       []string `json:"script,omitempty"`
	BeforeScript []string `json:"before_script,omitempty"`
	AfterScript  []string `json:"after_script,omitempty"`
	// GlobalVariables are YAML globals (and workflow rule variables) the job
	// inherits; Variables are the job's own plus rules:variables.
	GlobalVariables       []Var                 `json:"global_variables,omitempty"`
	Variables             []Var                 `json:"variables,omitempty"`
	Image                 *ciconfig.Image       `json:"image,omitempty"`
	Services              []ciconfig.Image      `json:"services,omitempty"`
	Artifacts             *ciconfig.Artifacts   `json:"artifacts,omitempty"`
	Cache                 []ciconfig.Cache      `json:"cache,omitempty"`
	TimeoutSeconds        int64                 `json:"timeout,omitempty"`
	RetryMax              int                   `json:"retry_max,omitempty"`
	RetryWhen             []string              `json:"retry_when,omitempty"`
	Needs                 []Need                `json:"needs,omitempty"`
	PipelineNeeds         []Need                `json:"pipeline_needs,omitempty"`
	NeedsSet              bool                  `json:"needs_set,omitempty"`
	Dependencies          []string              `json:"dependencies,omitempty"`
	DependenciesSet       bool                  `json:"dependencies_set,omitempty"`
	AllowFailureExitCodes []int                 `json:"allow_failure_exit_codes,omitempty"`
	StartIn               string                `json:"start_in,omitempty"`
	Environment           *ciconfig.Environment `json:"environment,omitempty"`
	Coverage              string                `json:"coverage,omitempty"`
	Interruptible         bool                  `json:"interruptible,omitempty"`
	Trigger               *ciconfig.Trigger     `json:"trigger,omitempty"`
	ResourceGroup         string                `json:"resource_group,omitempty"`
	ParallelIndex         int                   `json:"parallel_index,omitempty"`
	ParallelTotal         int                   `json:"parallel_total,omitempty"`
	// PlayVariables are set when a manual job is played with variables.
	PlayVariables []Var `json:"play_variables,omitempty"`
}

// Need is a stored needs: entry.
type Need struct {
	Job       string `json:"job"`
	Artifacts bool   `json:"artifacts"`
	Optional  bool   `json:"optional,omitempty"`
	// Pipeline is needs:pipeline ($PARENT_PIPELINE_ID) of PipelineNeeds.
	Pipeline string `json:"pipeline,omitempty"`
}

// ParseSpec decodes a stored job spec.
func ParseSpec(s string) (*JobSpec, error) {
	var sp JobSpec
	if err := json.Unmarshal([]byte(s), &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

func (sp *JobSpec) encode() string {
	b, _ := json.Marshal(sp)
	return string(b)
}

func toVars(vs []ciconfig.Variable) []Var {
	out := make([]Var, 0, len(vs))
	for _, v := range vs {
		out = append(out, Var{Key: v.Key, Value: v.Value, Raw: !v.Expand})
	}
	return out
}

func specFor(pj ciconfig.PlannedJob, workflow []ciconfig.Variable) *JobSpec {
	j := pj.Job
	sp := &JobSpec{
		Script: j.Script, BeforeScript: j.BeforeScript, AfterScript: j.AfterScript,
		GlobalVariables: append(toVars(j.GlobalVariables), toVars(workflow)...),
		Variables:       append(toVars(j.Variables), toVars(pj.ExtraVariables)...),
		Image:           j.Image, Services: j.Services, Artifacts: j.Artifacts, Cache: j.Cache,
		TimeoutSeconds: int64(j.Timeout.Seconds()), RetryMax: j.Retry.Max, RetryWhen: j.Retry.When,
		NeedsSet: pj.NeedsSet, Dependencies: j.Dependencies, DependenciesSet: j.DependenciesSet,
		AllowFailureExitCodes: pj.AllowFailureExitCodes, StartIn: pj.StartIn, Environment: j.Environment,
		Coverage: j.Coverage, Interruptible: pj.Interruptible, Trigger: j.Trigger, ResourceGroup: j.ResourceGroup,
		ParallelIndex: j.ParallelIndex, ParallelTotal: j.ParallelTotal,
	}
	for _, n := range pj.Needs {
		sp.Needs = append(sp.Needs, Need{Job: n.Job, Artifacts: n.Artifacts, Optional: n.Optional})
	}
	for _, n := range pj.PipelineNeeds {
		sp.PipelineNeeds = append(sp.PipelineNeeds, Need{Job: n.Job, Artifacts: n.Artifacts, Pipeline: n.Pipeline})
	}
	return sp
}
