-- A pipeline schedule's typed inputs (GitLab's schedule inputs): a JSON
-- object of name to value, '' for none.
ALTER TABLE pipeline_schedules ADD COLUMN inputs TEXT NOT NULL DEFAULT '';
