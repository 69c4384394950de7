-- Kiln schema. Portable between SQLite and PostgreSQL: {{id}}, {{bool}} and {{blob}}
-- are replaced per dialect before the statements run. Times are unix microseconds
-- (BIGINT) so that ordering and arithmetic are the same on both databases.

CREATE TABLE users (
  id {{id}},
  username TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  email TEXT NOT NULL DEFAULT '',
  is_admin {{bool}} NOT NULL DEFAULT FALSE,
  state TEXT NOT NULL DEFAULT 'active',
  password_hash TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);

CREATE TABLE personal_access_tokens (
  id {{id}},
  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  scopes TEXT NOT NULL,
  expires_at BIGINT,
  revoked {{bool}} NOT NULL DEFAULT FALSE,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX pat_hash ON personal_access_tokens (token_hash);
CREATE INDEX pat_user ON personal_access_tokens (user_id);

CREATE TABLE namespaces (
  id {{id}},
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  full_path TEXT NOT NULL,
  kind TEXT NOT NULL,
  owner_id BIGINT,
  visibility TEXT NOT NULL DEFAULT 'private',
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX namespaces_full_path ON namespaces (full_path);

CREATE TABLE group_members (
  namespace_id BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  access_level INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (namespace_id, user_id)
);

CREATE TABLE projects (
  id {{id}},
  namespace_id BIGINT NOT NULL REFERENCES namespaces(id),
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  full_path TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  visibility TEXT NOT NULL DEFAULT 'private',
  default_branch TEXT NOT NULL DEFAULT '',
  creator_id BIGINT NOT NULL,
  ci_config_path TEXT NOT NULL DEFAULT '',
  pipeline_iid BIGINT NOT NULL DEFAULT 0,
  job_token_allowlist {{bool}} NOT NULL DEFAULT FALSE,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_full_path ON projects (full_path);
CREATE INDEX projects_namespace ON projects (namespace_id);

CREATE TABLE project_members (
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  access_level INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
