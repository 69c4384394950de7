// Package client implements the runner side of the GitLab Runner HTTP
// protocol (POST /api/v4/jobs/request and friends) and the JSON payload
// types exchanged over it.
//
// The payload types are shared with Kiln's server, which encodes the 201
// body of a job request with JobResponse; the JSON tags are GitLab's, so an
// unmodified gitlab-runner decodes what Kiln sends and Kiln's own runner
// decodes what GitLab sends.
package client

import "time"

// FeaturesInfo advertises what the runner supports. GitLab drops jobs with
// runner_unsupported when a feature a job needs is missing, so every key is
// always sent.
type FeaturesInfo struct {
	Variables               bool `json:"variables"`
	Image                   bool `json:"image"`
	Services                bool `json:"services"`
	Artifacts               bool `json:"artifacts"`
	Cache                   bool `json:"cache"`
	FallbackCacheKeys       bool `json:"fallback_cache_keys"`
	Shared                  bool `json:"shared"`
	UploadMultipleArtifacts bool `json:"upload_multiple_artifacts"`
	UploadRawArtifacts      bool `json:"upload_raw_artifacts"`
	Session                 bool `json:"session"`
	Terminal                bool `json:"terminal"`
	Refspecs                bool `json:"refspecs"`
	Masking                 bool `json:"masking"`
	Proxy                   bool `json:"proxy"`
	RawVariables            bool `json:"raw_variables"`
	ArtifactsExclude        bool `json:"artifacts_exclude"`
	MultiBuildSteps         bool `json:"multi_build_steps"`
	TraceReset              bool `json:"trace_reset"`
	TraceChecksum           bool `json:"trace_checksum"`
	TraceSize               bool `json:"trace_size"`
	VaultSecrets            bool `json:"vault_secrets"`
	Cancelable              bool `json:"cancelable"`
	ReturnExitCode          bool `json:"return_exit_code"`
	ServiceVariables        bool `json:"service_variables"`
	CancelGracefully        bool `json:"cancel_gracefully"`
	TwoPhaseJobCommit       bool `json:"two_phase_job_commit"`
	JobInputs               bool `json:"job_inputs"`
}

// VersionInfo is the "info" object sent with every runner request.
type VersionInfo struct {
	Name         string       `json:"name,omitempty"`
	Version      string       `json:"version,omitempty"`
	Revision     string       `json:"revision,omitempty"`
	Platform     string       `json:"platform,omitempty"`
	Architecture string       `json:"architecture,omitempty"`
	Executor     string       `json:"executor,omitempty"`
	Shell        string       `json:"shell,omitempty"`
	Features     FeaturesInfo `json:"features"`
}

// JobRequest is the body of POST /api/v4/jobs/request.
type JobRequest struct {
	Info       VersionInfo `json:"info"`
	Token      string      `json:"token"`
	SystemID   string      `json:"system_id,omitempty"`
	LastUpdate string      `json:"last_update,omitempty"`
}

// JobResponse is the 201 body of POST /api/v4/jobs/request: everything a
// runner needs to execute one job. The server must not send a "run" key
// (gitlab-runner ≥ 18.11 rejects null or empty values for it), which is why
// this type has none.
type JobResponse struct {
	ID            int64          `json:"id"`
	Token         string         `json:"token"`
	AllowGitFetch bool           `json:"allow_git_fetch"`
	JobInfo       JobInfo        `json:"job_info"`
	GitInfo       GitInfo        `json:"git_info"`
	RunnerInfo    RunnerInfo     `json:"runner_info"`
	Variables     []Variable     `json:"variables"`
	Steps         []Step         `json:"steps"`
	Image         *Image         `json:"image"`
	Services      []Image        `json:"services"`
	Artifacts     []Artifact     `json:"artifacts"`
	Cache         []Cache        `json:"cache"`
	Credentials   []Credentials  `json:"credentials"`
	Dependencies  []Dependency   `json:"dependencies"`
	Features      GitlabFeatures `json:"features"`
}

// JobInfo describes the job for logs and labels.
type JobInfo struct {
	Name        string `json:"name"`
	Stage       string `json:"stage"`
	ProjectID   int64  `json:"project_id"`
	ProjectName string `json:"project_name"`
	// ProjectJobsRunningOnInstanceRunnersCount is a string in GitLab's API,
	// not a number; gitlab-runner fails to decode a number here.
	ProjectJobsRunningOnInstanceRunnersCount string `json:"project_jobs_running_on_instance_runners_count,omitempty"`
}

// Ref types in GitInfo.RefType.
const (
	RefTypeBranch = "branch"
	RefTypeTag    = "tag"
)

// GitInfo tells the runner where to fetch the sources from.
type GitInfo struct {
	// RepoURL carries the job's credentials (gitlab-ci-token:<job token>@).
	RepoURL          string   `json:"repo_url"`
	RepoObjectFormat string   `json:"repo_object_format,omitempty"`
	Ref              string   `json:"ref"`
	Sha              string   `json:"sha"`
	BeforeSha        string   `json:"before_sha"`
	RefType          string   `json:"ref_type"`
	Refspecs         []string `json:"refspecs"`
	Depth            int      `json:"depth"`
	Protected        *bool    `json:"protected,omitempty"`
	// KilnLocalRepo is a Kiln extension sent only to Kiln's built-in
	// runners: the bare repository's path on the server, which they fetch
	// from directly instead of over HTTP (see runner.localRepo).
	KilnLocalRepo string `json:"kiln_local_repo,omitempty"`
}

// RunnerInfo carries per-job runner settings decided by the server.
type RunnerInfo struct {
	// Timeout is the job timeout in seconds; ≤ 0 means 7200.
	Timeout int `json:"timeout"`
}

// Variable is one CI/CD variable exported to the job.
type Variable struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	Masked bool   `json:"masked"`
	// File makes the runner write Value to a file and set the variable to
	// that file's path.
	File bool `json:"file"`
	// Raw disables $VAR expansion of Value.
	Raw bool `json:"raw"`
}

// Step names and when-conditions used in Step.
const (
	StepNameScript      = "script"
	StepNameAfterScript = "after_script"

	WhenOnSuccess = "on_success"
	WhenOnFailure = "on_failure"
	WhenAlways    = "always"
)

// Step is one script section of a job. GitLab folds before_script into the
// "script" step; "after_script" runs separately whatever the outcome.
type Step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int      `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

// Image is a container image reference (image: or one services: entry);
// the shell executor ignores it.
type Image struct {
	Name       string   `json:"name"`
	Alias      string   `json:"alias,omitempty"`
	Command    []string `json:"command,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	// PullPolicy lists pull policies to try in order (GitLab's
	// image:pull_policy); empty means the runner's default.
	PullPolicy []string `json:"pull_policy,omitempty"`
	// Variables are a service's own variables (services:variables).
	Variables []Variable `json:"variables,omitempty"`
}

// Artifact is one artifacts entry of a job.
type Artifact struct {
	Name      string   `json:"name"`
	Untracked bool     `json:"untracked"`
	Paths     []string `json:"paths"`
	Exclude   []string `json:"exclude"`
	// When is on_success (default, also for ""), on_failure or always.
	When           string `json:"when"`
	ArtifactType   string `json:"artifact_type"`
	ArtifactFormat string `json:"artifact_format"`
	// ExpireIn is passed through verbatim, e.g. "1 week".
	ExpireIn string `json:"expire_in"`
}

// Cache policies in Cache.Policy.
const (
	CachePolicyPull     = "pull"
	CachePolicyPush     = "push"
	CachePolicyPullPush = "pull-push"
)

// Cache is one cache entry of a job.
type Cache struct {
	Key          string   `json:"key"`
	Untracked    bool     `json:"untracked"`
	Policy       string   `json:"policy"`
	Paths        []string `json:"paths"`
	When         string   `json:"when"`
	FallbackKeys []string `json:"fallback_keys"`
}

// Credentials are registry or other credentials; unused by the shell executor.
type Credentials struct {
	Type     string `json:"type"`
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// Dependency is a job whose artifacts this job downloads.
type Dependency struct {
	ID            int64          `json:"id"`
	Token         string         `json:"token"`
	Name          string         `json:"name"`
	ArtifactsFile DependencyFile `json:"artifacts_file"`
}

// DependencyFile describes a dependency's archive; an empty Filename means
// the dependency has no artifacts to download.
type DependencyFile struct {
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
}

// GitlabFeatures are server-side features relevant to the runner.
type GitlabFeatures struct {
	TraceSections  bool     `json:"trace_sections"`
	FailureReasons []string `json:"failure_reasons"`
}

// Job states sent in UpdateJobRequest.State.
const (
	StateRunning = "running"
	StateSuccess = "success"
	StateFailed  = "failed"
)

// Failure reasons sent in UpdateJobRequest.FailureReason.
const (
	FailureScript       = "script_failure"
	FailureRunnerSystem = "runner_system_failure"
	FailureTimeout      = "job_execution_timeout"
	FailureUnknown      = "unknown_failure"
	FailureJobCanceled  = "job_canceled"
	FailureImagePull    = "image_pull_failure"
)

// JobTraceOutput summarises the trace already sent, so the server can verify
// it holds the same bytes (it answers 412 otherwise).
type JobTraceOutput struct {
	Checksum string `json:"checksum,omitempty"`
	Bytesize int64  `json:"bytesize,omitempty"`
}

// UpdateJobRequest is the body of PUT /api/v4/jobs/:id.
type UpdateJobRequest struct {
	Info          VersionInfo    `json:"info"`
	Token         string         `json:"token"`
	State         string         `json:"state"`
	FailureReason string         `json:"failure_reason,omitempty"`
	Checksum      string         `json:"checksum,omitempty"`
	Output        JobTraceOutput `json:"output"`
	ExitCode      int            `json:"exit_code,omitempty"`
}

// RegisterRunnerRequest is the body of the legacy POST /api/v4/runners.
type RegisterRunnerRequest struct {
	Info            VersionInfo `json:"info"`
	Token           string      `json:"token"`
	Description     string      `json:"description,omitempty"`
	MaintenanceNote string      `json:"maintenance_note,omitempty"`
	// TagList is comma separated, a string rather than an array.
	TagList        string `json:"tag_list,omitempty"`
	RunUntagged    bool   `json:"run_untagged"`
	Locked         bool   `json:"locked"`
	AccessLevel    string `json:"access_level,omitempty"`
	MaximumTimeout int    `json:"maximum_timeout,omitempty"`
	Paused         bool   `json:"paused"`
}

// VerifyRunnerRequest is the body of POST /api/v4/runners/verify.
type VerifyRunnerRequest struct {
	Info     VersionInfo `json:"info"`
	Token    string      `json:"token"`
	SystemID string      `json:"system_id,omitempty"`
}

// RunnerResponse is returned by register (201) and verify (200).
// TokenExpiresAt must be null or RFC 3339, never "".
type RunnerResponse struct {
	ID             int64      `json:"id"`
	Token          string     `json:"token"`
	TokenExpiresAt *time.Time `json:"token_expires_at"`
}
