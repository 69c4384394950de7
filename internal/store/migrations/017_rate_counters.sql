-- Rate limits and throttles that every replica shares (ratecounters.go).
-- One row per (scope, subject): tat is a GCRA bucket's theoretical arrival
-- time, or a failure counter's expiry (µs since the epoch); hits counts a
-- counter's failures. Rows whose tat has passed carry no state and are
-- pruned. UNLOGGED on PostgreSQL: no WAL, so an update waits for no fsync,
-- and a crash forgets the limits (as a restart of a single server does).
CREATE {{unlogged}} TABLE rate_counters (
  scope TEXT NOT NULL,
  subject TEXT NOT NULL,
  tat BIGINT NOT NULL,
  hits BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, subject)
);
CREATE INDEX rate_counters_tat ON rate_counters (tat);
