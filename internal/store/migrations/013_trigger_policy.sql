-- Policy of a trigger token (Kiln): the refs it may run (access.MatchRef
-- patterns) and the source networks it is accepted from (CIDRs), one per
-- line; empty means no restriction.
ALTER TABLE triggers ADD COLUMN allowed_refs TEXT NOT NULL DEFAULT '';
ALTER TABLE triggers ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '';
