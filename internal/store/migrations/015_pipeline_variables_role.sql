-- GitLab's ci_pipeline_variables_minimum_override_role ("minimum role to
-- use pipeline variables"): no_one_allowed, developer, maintainer or
-- owner. developer, GitLab's self-managed default, lets everyone who may
-- run a pipeline set variables.
ALTER TABLE projects ADD COLUMN ci_variables_min_role TEXT NOT NULL DEFAULT 'developer';
