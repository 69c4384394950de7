package ciconfig

import "strings"

// Messages GitLab uses verbatim; kept together so tests and callers can
// refer to them.
const (
	msgEmpty          = "Please provide content of .gitlab-ci.yml"
	msgInvalidFormat  = "Invalid configuration format"
	msgNoVisibleJobs  = "jobs config should contain at least one visible job"
	msgTooBig         = "The parsed YAML is too big"
	msgTotalTooBig    = "Total size of combined CI/CD configuration is too big"
	msgWorkflowFilter = "Pipeline filtered out by workflow rules."
	msgNoJobs         = "Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."
)

// Errors is the error Parse returns: every message is worded as GitLab
// words it, so the lint API can return them unchanged.
type Errors struct {
	Messages []string
}

func newErrors(msgs ...string) *Errors {
	return &Errors{Messages: msgs}
}

func (e *Errors) Error() string {
	return strings.Join(e.Messages, "; ")
}

// PipelineError is the error Evaluate returns when GitLab would refuse to
// create the pipeline.
type PipelineError struct {
	Message string
}

func (e *PipelineError) Error() string { return e.Message }

// Limits bounds the work Parse does on hostile input.
type Limits struct {
	// MaxBytes is the largest accepted file, per file (includes included).
	MaxBytes int
	// MaxDepth is the deepest nesting of YAML collections.
	MaxDepth int
	// MaxAliases is the number of alias expansions allowed, counted after
	// expansion (an alias inside an expanded alias counts again), which is
	// what stops "billion laughs".
	MaxAliases int
	// MaxNodes bounds the size of the expanded value tree, per file.
	MaxNodes int
	// MaxJobs bounds the number of jobs after parallel expansion.
	MaxJobs int
	// MaxIncludes bounds the number of included files, nested ones too.
	MaxIncludes int
	// MaxExpandedBytes bounds the scalar bytes one file expands to once
	// its aliases are replaced by copies (GitLab's max_yaml_size_bytes
	// measures the loaded hash the same way). Checked on the node tree
	// before anything is copied.
	MaxExpandedBytes int
	// MaxTotalBytes bounds the whole configuration: every included file,
	// the copies extends and !reference make, and each job's definition
	// times its parallel instances (GitLab's ci_max_total_yaml_size_bytes).
	MaxTotalBytes int
}

// DefaultLimits returns limits comfortably above real-world configurations
// (GitLab's own defaults are 2 MB per file, depth 100, 150 includes).
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:    2 << 20,
		MaxDepth:    100,
		MaxAliases:  10000,
		MaxNodes:    500000,
		MaxJobs:     5000,
		MaxIncludes: 150,

		MaxExpandedBytes: 4 << 20,
		MaxTotalBytes:    16 << 20,
	}
}

// withDefaults fills unset (zero or negative) limits from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxAliases <= 0 {
		l.MaxAliases = d.MaxAliases
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxJobs <= 0 {
		l.MaxJobs = d.MaxJobs
	}
	if l.MaxIncludes <= 0 {
		l.MaxIncludes = d.MaxIncludes
	}
	if l.MaxExpandedBytes <= 0 {
		l.MaxExpandedBytes = d.MaxExpandedBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	return l
}

// errList accumulates validation messages in order, without duplicates.
type errList struct {
	msgs []string
	seen map[string]bool
}

func (e *errList) add(msg string) {
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	if e.seen[msg] {
		return
	}
	e.seen[msg] = true
	e.msgs = append(e.msgs, msg)
}

func (e *errList) empty() bool { return len(e.msgs) == 0 }
