-- Live job logs in the database, so that every replica reads them (GitLab's
-- incremental logging keeps them in its database too): job_traces holds a
-- log's stored length, the runner's offset once it hit the size limit
-- (cut_size, NULL until then) and when it was archived to the blob store
-- (archived_at, NULL while live); trace_chunks holds its bytes in
-- fixed-size chunks (internal/traces), so an append rewrites at most the
-- last chunk. Archiving copies the chunks to traces/<job id>.log and then
-- deletes them.
CREATE TABLE job_traces (
  job_id BIGINT PRIMARY KEY,
  size BIGINT NOT NULL DEFAULT 0,
  cut_size BIGINT,
  archived_at BIGINT,
  updated_at BIGINT NOT NULL
);
CREATE INDEX job_traces_live ON job_traces (job_id) WHERE archived_at IS NULL;
CREATE TABLE trace_chunks (
  job_id BIGINT NOT NULL,
  idx BIGINT NOT NULL,
  data {{blob}} NOT NULL,
  PRIMARY KEY (job_id, idx)
);
