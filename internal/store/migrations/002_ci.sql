-- Pipelines, jobs, variables, runners, triggers, schedules and sessions.

CREATE TABLE pipelines (
  id {{id}},
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  iid BIGINT NOT NULL,
  ref TEXT NOT NULL,
  tag {{bool}} NOT NULL DEFAULT FALSE,
  sha TEXT NOT NULL,
  before_sha TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000',
  source TEXT NOT NULL,
  status TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  user_id BIGINT,
  trigger_id BIGINT,
  trigger_short_token TEXT NOT NULL DEFAULT '',
  schedule_id BIGINT,
  upstream_job_id BIGINT,
  upstream_pipeline_id BIGINT,
  protected {{bool}} NOT NULL DEFAULT FALSE,
  warnings {{bool}} NOT NULL DEFAULT FALSE,
  yaml_errors TEXT NOT NULL DEFAULT '',
  commit_title TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  committed_at BIGINT,
  duration BIGINT,
  queued_duration BIGINT
);
CREATE UNIQUE INDEX pipelines_project_iid ON pipelines (project_id, iid);
CREATE INDEX pipelines_project_id ON pipelines (project_id, id);
CREATE INDEX pipelines_project_status ON pipelines (project_id, status, id);
CREATE INDEX pipelines_project_ref ON pipelines (project_id, ref, id);
CREATE INDEX pipelines_trigger ON pipelines (trigger_id, id);
CREATE INDEX pipelines_upstream_job ON pipelines (upstream_job_id);

-- Pipeline variables (API, trigger, schedule, manual): values encrypted.
CREATE TABLE pipeline_variables (
  pipeline_id BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value_enc TEXT NOT NULL,
  variable_type TEXT NOT NULL DEFAULT 'env_var',
  PRIMARY KEY (pipeline_id, key)
);

CREATE TABLE jobs (
  id {{id}},
  pipeline_id BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
  project_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  stage TEXT NOT NULL,
  stage_idx INTEGER NOT NULL,
  status TEXT NOT NULL,
  when_ TEXT NOT NULL DEFAULT 'on_success',
  allow_failure {{bool}} NOT NULL DEFAULT FALSE,
  kind TEXT NOT NULL DEFAULT 'build',
  spec TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '',
  user_id BIGINT,
  runner_id BIGINT,
  token_hash TEXT,
  failure_reason TEXT NOT NULL DEFAULT '',
  exit_code INTEGER,
  retried {{bool}} NOT NULL DEFAULT FALSE,
  retry_count INTEGER NOT NULL DEFAULT 0,
  coverage TEXT NOT NULL DEFAULT '',
  trace_size BIGINT NOT NULL DEFAULT 0,
  artifacts_file TEXT NOT NULL DEFAULT '',
  artifacts_size BIGINT NOT NULL DEFAULT 0,
  artifacts_expire_at BIGINT,
  created_at BIGINT NOT NULL,
  queued_at BIGINT,
  started_at BIGINT,
  finished_at BIGINT,
  scheduled_at BIGINT,
  last_seen_at BIGINT,
  erased_at BIGINT,
  downstream_pipeline_id BIGINT
);
CREATE INDEX jobs_pipeline ON jobs (pipeline_id, id);
CREATE INDEX jobs_project ON jobs (project_id, id);
CREATE INDEX jobs_project_status ON jobs (project_id, status, id);
CREATE INDEX jobs_status ON jobs (status, id);
CREATE UNIQUE INDEX jobs_token ON jobs (token_hash);

-- Project CI/CD variables: values encrypted at rest.
CREATE TABLE ci_variables (
  id {{id}},
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value_enc TEXT NOT NULL,
  variable_type TEXT NOT NULL DEFAULT 'env_var',
  protected {{bool}} NOT NULL DEFAULT FALSE,
  masked {{bool}} NOT NULL DEFAULT FALSE,
  raw {{bool}} NOT NULL DEFAULT FALSE,
  environment_scope TEXT NOT NULL DEFAULT '*',
  description TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX ci_variables_key ON ci_variables (project_id, key, environment_scope);

CREATE TABLE protected_refs (
  id {{id}},
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX protected_refs_name ON protected_refs (project_id, kind, name);

CREATE TABLE runners (
  id {{id}},
  token_hash TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  runner_type TEXT NOT NULL DEFAULT 'instance_type',
  project_id BIGINT,
  group_id BIGINT,
  tags TEXT NOT NULL DEFAULT '',
  run_untagged {{bool}} NOT NULL DEFAULT TRUE,
  locked {{bool}} NOT NULL DEFAULT FALSE,
  paused {{bool}} NOT NULL DEFAULT FALSE,
  access_level TEXT NOT NULL DEFAULT 'not_protected',
  maximum_timeout BIGINT,
  builtin {{bool}} NOT NULL DEFAULT FALSE,
  version TEXT NOT NULL DEFAULT '',
  platform TEXT NOT NULL DEFAULT '',
  architecture TEXT NOT NULL DEFAULT '',
  ip_address TEXT NOT NULL DEFAULT '',
  contacted_at BIGINT,
  creator_id BIGINT,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX runners_token ON runners (token_hash);

CREATE TABLE triggers (
  id {{id}},
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  owner_id BIGINT NOT NULL,
  token_hash TEXT NOT NULL,
  short_token TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  last_used BIGINT,
  expires_at BIGINT
);
CREATE UNIQUE INDEX triggers_token ON triggers (token_hash);
CREATE INDEX triggers_project ON triggers (project_id);

CREATE TABLE trigger_deliveries (
  id {{id}},
  project_id BIGINT NOT NULL,
  trigger_id BIGINT,
  short_token TEXT NOT NULL DEFAULT '',
  ref TEXT NOT NULL DEFAULT '',
  variable_names TEXT NOT NULL DEFAULT '',
  source_ip TEXT NOT NULL DEFAULT '',
  endpoint TEXT NOT NULL DEFAULT '',
  status_code INTEGER NOT NULL,
  result TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  pipeline_id BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX trigger_deliveries_project ON trigger_deliveries (project_id, id);

CREATE TABLE pipeline_schedules (
  id {{id}},
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  description TEXT NOT NULL,
  ref TEXT NOT NULL,
  cron TEXT NOT NULL,
  cron_timezone TEXT NOT NULL DEFAULT 'UTC',
  active {{bool}} NOT NULL DEFAULT TRUE,
  owner_id BIGINT NOT NULL,
  next_run_at BIGINT NOT NULL,
  last_pipeline_id BIGINT,
  last_error TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX pipeline_schedules_due ON pipeline_schedules (active, next_run_at);

CREATE TABLE pipeline_schedule_variables (
  schedule_id BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value_enc TEXT NOT NULL,
  variable_type TEXT NOT NULL DEFAULT 'env_var',
  PRIMARY KEY (schedule_id, key)
);

CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
