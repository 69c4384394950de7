package store

import "context"

// CountPendingJobs counts build jobs waiting for a runner (the queue depth
// of the kiln_jobs_pending metric); the jobs_status index answers it.
func (s *Store) CountPendingJobs(ctx context.Context) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND kind = 'build'`).Scan(&n)
	return n, err
}
