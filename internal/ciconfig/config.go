// Package ciconfig turns a .gitlab-ci.yml into a typed configuration,
// validates it with GitLab's own error messages, and decides which jobs a
// given pipeline gets.
//
// The processing order follows GitLab's: load YAML (anchors and merge keys
// resolved), merge include: files, apply extends:, resolve !reference tags,
// inject the .pre/.post stages, then validate and normalize every keyword.
// The package knows nothing about HTTP, storage or job execution.
package ciconfig

import "time"

// FileReader reads other files of the same repository at the same commit
// (for include:local and rules:exists).
type FileReader interface {
	ReadFile(path string) ([]byte, error)
	Exists(globs []string) (bool, error)
}

// Options tunes Parse.
type Options struct {
	// Files gives access to the repository. When nil, include:local fails
	// with GitLab's "Local file `x` does not have project!".
	Files FileReader
	// Limits bounds resource use; zero fields take DefaultLimits values.
	Limits Limits
	// Context, when set, is used for what GitLab decides while loading the
	// file: variables in include paths and include:rules. Without it,
	// include:rules see no variables, rules:exists in includes uses Files,
	// and changes: is true.
	Context *EvalContext
	// AllErrors reports every job's problem with stages, dependencies and
	// needs (for `kiln lint`) instead of GitLab's first one only.
	AllErrors bool
	// Inputs are the values given for the header's `spec: inputs:`
	// (strings from form fields are converted to the declared type).
	// Invalid inputs fail Parse with an *InputError.
	Inputs map[string]any
	// Variables are the CI variables known when the file is loaded
	// (predefined, project and the request's own variables), for the
	// expand_vars input function. When nil, expand_vars uses Context's.
	Variables VarLookup
	// usedVars, set by Parse, records that expand_vars read Variables.
	usedVars *bool
}

// VarLookup resolves a variable for expand_vars: its value, whether it
// is masked (a masked variable may not be expanded into the
// configuration) and whether it exists.
type VarLookup func(name string) (value string, masked, ok bool)

// Config is a parsed and validated configuration.
type Config struct {
	// Stages lists stages with .pre first and .post last, as GitLab does.
	Stages []string
	// Inputs are the resolved `spec: inputs:` values (given or default);
	// nil when the file has no spec header.
	Inputs map[string]any
	// Variables are the global variables in file order.
	Variables []Variable
	Workflow  *Workflow
	// Jobs are the visible jobs in file order, after extends, default,
	// inherit, !reference and parallel expansion.
	Jobs []*Job
	// MergedYAML is the configuration after includes, extends and
	// !reference, as GitLab's lint API returns it.
	MergedYAML string
	Warnings   []string
	// UsesVariables is true when expand_vars read Options.Variables: the
	// configuration then depends on variable values, not only on files.
	UsesVariables bool
}

// Variable is one entry of a variables: block.
type Variable struct {
	Key, Value, Description string
	Options                 []string
	// Expand is false for `expand: false` (raw) variables.
	Expand bool
}

// Workflow is the workflow: keyword.
type Workflow struct {
	Name  string
	Rules []Rule
}

// Rule is one entry of rules: (job, workflow or include rules).
type Rule struct {
	If string
	// Changes are glob patterns (rules:changes or rules:changes:paths).
	Changes          []string
	ChangesCompareTo string
	Exists           []string
	When             string
	AllowFailure     *bool
	Variables        []Variable
	Needs            []Need
	// NeedsSet tells `needs: []` (no needs) from no needs: key.
	NeedsSet      bool
	StartIn       string
	Interruptible *bool
}

// Policy is an only: or except: block.
type Policy struct {
	Refs       []string `json:"refs,omitempty"`
	Variables  []string `json:"variables,omitempty"`
	Changes    []string `json:"changes,omitempty"`
	Kubernetes string   `json:"kubernetes,omitempty"`
}

// Need is one entry of needs:.
//
// Cross-project (project:/ref:) and parent-pipeline (pipeline:) needs are
// accepted, kept here for callers, and otherwise ignored with a warning:
// Kiln has no cross-project artifact access. They are never validated
// against local jobs and never appear in PlannedJob.Needs.
type Need struct {
	Job       string
	Artifacts bool
	Optional  bool
	Project   string
	Ref       string
	Pipeline  string
	// matrix is a needs:parallel:matrix selector, resolved to job names
	// during parallel expansion.
	matrix []matrixEntry
}

// CrossPipeline reports whether the need refers to another pipeline.
func (n Need) CrossPipeline() bool { return n.Project != "" || n.Pipeline != "" }

// Retry is the retry: keyword.
type Retry struct {
	Max       int
	When      []string
	ExitCodes []int
}

// Environment is the environment: keyword.
type Environment struct {
	Name, URL, Action string
	OnStop            string
	AutoStopIn        string
	DeploymentTier    string
}

// Artifacts is the artifacts: keyword.
type Artifacts struct {
	Name      string
	Paths     []string
	Exclude   []string
	Untracked bool
	When      string
	ExpireIn  string
	ExposeAs  string
	Public    *bool
	Reports   map[string][]string
}

// Cache is one cache: entry.
type Cache struct {
	// Key is the literal key; when the key is `key: {files: [...]}` it is
	// empty and KeyFiles/KeyPrefix are set instead.
	Key          string
	KeyFiles     []string
	KeyPrefix    string
	Paths        []string
	Untracked    bool
	Unprotect    bool
	Policy, When string
	FallbackKeys []string
}

// Image is an image: or one services: entry.
type Image struct {
	Name       string
	Entrypoint []string
	// Alias and Command apply to services only.
	Alias      string
	Command    []string
	PullPolicy []string
	// Variables apply to services only (services:variables).
	Variables []Variable `json:",omitempty"`
}

// Trigger is the trigger: keyword of a bridge job.
type Trigger struct {
	Project, Branch, Strategy string
	// Include lists the local files of a child pipeline.
	Include []string
	// IncludeInputs are include:inputs of Include's files, by file.
	IncludeInputs map[string]map[string]any `json:",omitempty"`
	// IncludeArtifacts lists child pipeline files generated by jobs.
	IncludeArtifacts []TriggerArtifact
	// IncludeProjects lists child pipeline files from other projects.
	IncludeProjects []TriggerProjectFile
	Forward         struct{ YAMLVariables, PipelineVariables bool }
	// Inputs are the downstream project's `spec: inputs:` values
	// (trigger:inputs, with trigger:project only).
	Inputs map[string]any `json:",omitempty"`
}

// TriggerArtifact is a trigger:include:artifact entry.
type TriggerArtifact struct{ Artifact, Job string }

// TriggerProjectFile is a trigger:include:project entry.
type TriggerProjectFile struct{ Project, File, Ref string }

// Job is a visible job after all expansions.
type Job struct {
	Name, Stage                       string
	Script, BeforeScript, AfterScript []string
	// Variables are the job's own variables (including parallel:matrix
	// values, which win). GlobalVariables are the global ones the job
	// inherits under inherit:variables; job variables override them.
	Variables       []Variable
	GlobalVariables []Variable
	// Only and Except are nil when the job uses rules. A job with neither
	// rules nor only: gets GitLab's default only: {refs: [branches, tags]}.
	Only, Except *Policy
	// Rules is non-nil when the job uses rules: (possibly empty).
	Rules   []Rule
	When    string
	StartIn string
	// AllowFailure is the effective value (manual jobs default to true);
	// AllowFailureSet tells whether the file set it.
	AllowFailure          bool
	AllowFailureSet       bool
	AllowFailureExitCodes []int
	Needs                 []Need
	NeedsSet              bool
	Dependencies          []string
	DependenciesSet       bool
	Timeout               time.Duration
	Retry                 Retry
	Interruptible         bool
	InterruptibleSet      bool
	Tags                  []string
	Environment           *Environment
	Coverage              string
	Artifacts             *Artifacts
	Cache                 []Cache
	Image                 *Image
	Services              []Image
	Trigger               *Trigger
	ResourceGroup         string
	// ParallelIndex and ParallelTotal are 1-based CI_NODE_INDEX and
	// CI_NODE_TOTAL for parallel jobs, zero otherwise.
	ParallelIndex, ParallelTotal int
	// BaseName is the job name before parallel expansion.
	BaseName string
}

// IsBridge reports whether the job triggers a downstream pipeline.
func (j *Job) IsBridge() bool { return j.Trigger != nil }
