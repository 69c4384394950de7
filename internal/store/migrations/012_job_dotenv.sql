-- Variables jobs exported through artifacts:reports:dotenv: a pipeline's
-- outputs (trigger and wait). Rows go with their job.
CREATE TABLE job_dotenv (
  job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  pipeline_id BIGINT NOT NULL,
  position INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
);
CREATE INDEX job_dotenv_pipeline ON job_dotenv (pipeline_id);
