package ciconfig

import "errors"

// LintResult is what GitLab's /projects/:id/ci/lint API returns.
type LintResult struct {
	Valid      bool      `json:"valid"`
	Errors     []string  `json:"errors"`
	Warnings   []string  `json:"warnings"`
	MergedYAML string    `json:"merged_yaml"`
	Jobs       []LintJob `json:"jobs"`
}

// LintJob is one entry of the lint API's jobs list.
type LintJob struct {
	Name         string   `json:"name"`
	Stage        string   `json:"stage"`
	BeforeScript []string `json:"before_script"`
	Script       []string `json:"script"`
	AfterScript  []string `json:"after_script"`
	TagList      []string `json:"tag_list"`
	Environment  string   `json:"environment,omitempty"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
	Only         *Policy  `json:"only,omitempty"`
	Except       *Policy  `json:"except,omitempty"`
}

// Lint validates src. With ctx it also simulates pipeline creation (as
// the lint API's dry_run does) and lists the jobs that pipeline would
// get; without it, it lists every job of the configuration.
func Lint(src []byte, opts Options, ctx *EvalContext) LintResult {
	res := LintResult{Errors: []string{}, Warnings: []string{}, Jobs: []LintJob{}}
	if opts.Context == nil {
		opts.Context = ctx
	}
	cfg, err := Parse(src, opts)
	if err != nil {
		var e *Errors
		var ie *InputError
		if errors.As(err, &e) {
			res.Errors = append(res.Errors, e.Messages...)
		} else if errors.As(err, &ie) {
			res.Errors = append(res.Errors, ie.Messages...)
		} else {
			res.Errors = append(res.Errors, err.Error())
		}
		return res
	}
	res.MergedYAML = cfg.MergedYAML
	res.Warnings = append(res.Warnings, cfg.Warnings...)
	if ctx == nil {
		for _, j := range stageOrder(cfg.Jobs, cfg.Stages) {
			res.Jobs = append(res.Jobs, lintJob(j, j.When, j.AllowFailure))
		}
		res.Valid = true
		return res
	}
	plan, err := cfg.Evaluate(*ctx)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	planned := make([]*Job, 0, len(plan.Jobs))
	byName := map[string]PlannedJob{}
	for _, pj := range plan.Jobs {
		planned = append(planned, pj.Job)
		byName[pj.Name] = pj
	}
	for _, j := range stageOrder(planned, cfg.Stages) {
		pj := byName[j.Name]
		res.Jobs = append(res.Jobs, lintJob(j, pj.When, pj.AllowFailure))
	}
	res.Valid = true
	return res
}

func lintJob(j *Job, when string, allowFailure bool) LintJob {
	lj := LintJob{
		Name:         j.Name,
		Stage:        j.Stage,
		BeforeScript: nonNil(j.BeforeScript),
		Script:       nonNil(j.Script),
		AfterScript:  nonNil(j.AfterScript),
		TagList:      nonNil(j.Tags),
		When:         when,
		AllowFailure: allowFailure,
		Only:         j.Only,
		Except:       j.Except,
	}
	if j.Environment != nil {
		lj.Environment = j.Environment.Name
	}
	return lj
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
