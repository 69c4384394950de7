-- Files to remove after a deletion committed: written in the same
-- transaction as the deletion (a job's trace and artifacts; a project's
-- repository, caches and build directories) and removed by the sweeper
-- after commit and at every start, so that a crash between the two never
-- leaves files behind for good.
CREATE TABLE file_deletions (
  id {{id}},
  job_id BIGINT,
  project_path TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
CREATE INDEX file_deletions_project_path ON file_deletions (project_path);
