-- The project job lists (API and UI) filter on kind and retried and order by
-- id: with all four in one index, counting, page 1 and deep pages read the
-- index alone instead of looking up every job row of a big project.
CREATE INDEX jobs_project_kind ON jobs (project_id, kind, retried, id);
