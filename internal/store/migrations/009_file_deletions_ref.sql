-- A deleted pipeline's persistent ref (refs/pipelines/<id>) is removed
-- from its project's repository like its jobs' files.
ALTER TABLE file_deletions ADD COLUMN git_ref TEXT NOT NULL DEFAULT '';
