-- Idempotency-Key of pipeline creation calls (trigger API, POST /pipeline):
-- the first pipeline created under a key, per project and caller. The
-- unique index makes concurrent duplicates (on any replica) create one
-- pipeline: the loser's transaction fails and it replays the winner's.
CREATE TABLE idempotency_keys (
  id {{id}},
  project_id BIGINT NOT NULL,
  scope TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  pipeline_id BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX idempotency_keys_key ON idempotency_keys (project_id, scope, idem_key);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
