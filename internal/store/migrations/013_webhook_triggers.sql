-- Webhook triggers: per-project receiving URLs (uid) with a sender kind,
-- a secret (sealed with the secrets key: HMAC verification needs it in
-- the clear), CEL filter and mapping, and their deliveries.
CREATE TABLE webhook_triggers (
  id {{id}},
  project_id BIGINT NOT NULL,
  owner_id BIGINT NOT NULL,
  uid TEXT NOT NULL,
  description TEXT NOT NULL,
  kind TEXT NOT NULL,
  secret_enc TEXT NOT NULL,
  signature_header TEXT NOT NULL,
  signature_algorithm TEXT NOT NULL,
  allowed_cidrs TEXT NOT NULL,
  filter TEXT NOT NULL,
  ref_expr TEXT NOT NULL,
  sha_expr TEXT NOT NULL,
  variables TEXT NOT NULL,
  inputs TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX webhook_triggers_uid ON webhook_triggers (uid);
CREATE INDEX webhook_triggers_project ON webhook_triggers (project_id, id);

CREATE TABLE webhook_deliveries (
  id {{id}},
  trigger_id BIGINT NOT NULL,
  project_id BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  delivery_key TEXT NOT NULL,
  source_ip TEXT NOT NULL,
  headers TEXT NOT NULL,
  query TEXT NOT NULL,
  body {{blob}},
  body_truncated {{bool}} NOT NULL,
  status_code INTEGER NOT NULL,
  result TEXT NOT NULL,
  reason TEXT NOT NULL,
  verdict TEXT NOT NULL,
  pipeline_id BIGINT,
  replay_of BIGINT
);
CREATE INDEX webhook_deliveries_trigger ON webhook_deliveries (trigger_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
