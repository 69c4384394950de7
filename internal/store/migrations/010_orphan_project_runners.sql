-- Project runners (and delivery log rows) left behind by projects deleted
-- before deleting a project took them along: their tokens would keep
-- working, and on SQLite the runner could attach to a later project that
-- reused the id. Ids are no longer reused (006); these rows go.
DELETE FROM runners WHERE runner_type = 'project_type' AND project_id NOT IN (SELECT id FROM projects);
DELETE FROM trigger_deliveries WHERE project_id NOT IN (SELECT id FROM projects);
