-- GitLab's "Use separate caches for protected branches" (project API
-- ci_separated_caches), on by default: cache keys get a -protected or
-- -non_protected suffix so that unprotected refs cannot poison what
-- protected ones restore.
ALTER TABLE projects ADD COLUMN ci_separated_caches {{bool}} NOT NULL DEFAULT TRUE;
