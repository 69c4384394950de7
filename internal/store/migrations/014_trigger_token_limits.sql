-- More of a trigger token's policy (Kiln): whether the token may set
-- pipeline variables at all (1) or not (0), the variable names it may set
-- (one per line; empty: any), and its own rate limit in calls per minute
-- (0: none beyond the server's limits).
ALTER TABLE triggers ADD COLUMN variables_allowed INTEGER NOT NULL DEFAULT 1;
ALTER TABLE triggers ADD COLUMN allowed_variables TEXT NOT NULL DEFAULT '';
ALTER TABLE triggers ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
