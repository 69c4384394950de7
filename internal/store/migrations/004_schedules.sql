-- Pipeline schedules: listing by project, and a log of every run (cron or
-- play) with its outcome. The unique slot index is a second guard, after the
-- conditional UPDATE of next_run_at, that one due time fires at most once
-- however many servers share the database.
CREATE INDEX pipeline_schedules_project ON pipeline_schedules (project_id, id);

CREATE TABLE pipeline_schedule_runs (
  id {{id}},
  schedule_id BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
  project_id BIGINT NOT NULL,
  kind TEXT NOT NULL,
  scheduled_for BIGINT,
  user_id BIGINT,
  result TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  pipeline_id BIGINT,
  created_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE UNIQUE INDEX pipeline_schedule_runs_slot ON pipeline_schedule_runs (schedule_id, scheduled_for);
CREATE INDEX pipeline_schedule_runs_schedule ON pipeline_schedule_runs (schedule_id, id);
