// Package state is GitLab's CI job and pipeline status state machine as
// pure functions: the storage layer loads a pipeline's jobs, asks this
// package what to change, and persists the returned transitions in one
// transaction. Nothing here touches a database, a clock or the network;
// "now" is a parameter.
//
// # Job lifecycle
//
//	                      +--> manual -----Play-----+
//	                      |                         |
//	                      |                         v
//	created --Advance-->--+--> pending <------------+-------------+
//	   ^                  |       |                               |
//	   |                  |     runner                        Advance,
//	   |                  |       v                           when due
//	   |                  |    running --Finish--> success        |
//	   |                  |       |      \-------> failed         |
//	   |                  |     Cancel                            |
//	   |                  |       v                               |
//	   |                  |   canceling --Finish--> canceled      |
//	   |                  |                                       |
//	   |                  +--> scheduled -------------------------+
//	   |                  |
//	   |                  +--> skipped
//	   |                          |
//	   +----reset: Play / Retry---+
//
//	Cancel also: created, pending, manual, scheduled --> canceled
//	RetryPlan:   failed, canceled --> cloned as a new created row,
//	             the old row kept and marked Retried
//
// [Valid] encodes every allowed edge (GitLab's state machine events);
// success, failed, canceled and skipped are completed (see [IsComplete]),
// and only skipped ever leaves that set, by being reset.
//
// # When a created job moves
//
// [Advance] reproduces one pass of GitLab's AtomicProcessingService. A
// job's prerequisites are every job of earlier stages (stage
// scheduling) or exactly its needs (`needs: [...]`; `needs: []` means
// none). While any prerequisite is unfinished the job stays created.
// Once all are complete their composite status decides:
//
//	when          stage scheduling          needs
//	on_success    success, skipped -> run   success -> run
//	manual        same, -> manual           same, -> manual
//	delayed       same, -> scheduled        same, -> scheduled
//	on_failure    failed -> run             failed -> run
//	always        success, failed, skipped  success, failed, skipped
//	otherwise     skipped                   skipped
//
// Composite statuses follow Gitlab::Ci::Status::Composite. A failed or
// canceled allow_failure job counts as success (with a warning), so it
// never blocks; a manual job with allow_failure (the default for job
// level `when: manual`) is "ignored": it does not hold later stages, but
// a job that needs it is skipped until it is played, at which point
// [Play] resets that job to created. A blocking manual job
// (allow_failure: false, the default for `rules: when: manual`) keeps
// its dependents and later stages created and makes the pipeline status
// manual ("blocked"). Because the DAG composite needs an actual success,
// a job whose need was skipped is skipped too, which is how skips
// propagate along needs chains.
//
// # Pipeline status
//
// [PipelineStatus] applies the same composition to all current jobs
// (those not superseded by a retry) and reports allow_failure failures
// as warnings.
package state
