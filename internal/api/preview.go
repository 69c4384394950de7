package api

import "github.com/kilnci/kiln/internal/pipeline"

// PreviewJSON is the answer of dry_run=true: what would run, with
// variable names but no values.
func PreviewJSON(pv *pipeline.Preview) map[string]any {
	jobs := make([]map[string]any, 0, len(pv.Jobs))
	for _, j := range pv.Jobs {
		jobs = append(jobs, map[string]any{"name": j.Name, "stage": j.Stage, "when": j.When, "kind": j.Kind,
			"allow_failure": j.AllowFailure, "rule": j.Decision, "needs": j.Needs})
	}
	stages := pv.Stages
	if stages == nil {
		stages = []string{}
	}
	return map[string]any{"dry_run": true, "ref": pv.Ref, "tag": pv.Tag, "sha": pv.SHA, "source": pv.Source,
		"protected": pv.Protected, "name": nilIfEmpty(pv.Name), "stages": stages, "jobs": jobs,
		"variables": map[string]any{"pipeline": pv.PipelineVariables, "yaml": pv.YAMLVariables},
		"inputs":    pv.Inputs}
}
