package store

import "context"

// DotenvVar is a variable a job exported through artifacts:reports:dotenv.
type DotenvVar struct {
	JobID   int64
	JobName string
	Key     string
	Value   string
}

// SetJobDotenv replaces the variables job jobID exported.
func (t *Tx) SetJobDotenv(ctx context.Context, jobID, pipelineID int64, keys, values []string) error {
	if _, err := t.Exec(ctx, `DELETE FROM job_dotenv WHERE job_id = ?`, jobID); err != nil {
		return err
	}
	for i := range keys {
		if _, err := t.Exec(ctx, `INSERT INTO job_dotenv (job_id, pipeline_id, position, key, value) VALUES (?, ?, ?, ?, ?)`,
			jobID, pipelineID, i, keys[i], values[i]); err != nil {
			return err
		}
	}
	return nil
}

// PipelineDotenv lists what the current (not retried) jobs of a pipeline
// exported, by stage, job id and position in the file.
func (s *Store) PipelineDotenv(ctx context.Context, pipelineID int64) ([]DotenvVar, error) {
	rows, err := s.query(ctx, `SELECT d.job_id, j.name, d.key, d.value FROM job_dotenv d JOIN jobs j ON j.id = d.job_id
		WHERE d.pipeline_id = ? AND j.retried = FALSE ORDER BY j.stage_idx, j.id, d.position`, pipelineID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DotenvVar
	for rows.Next() {
		var v DotenvVar
		if err := rows.Scan(&v.JobID, &v.JobName, &v.Key, &v.Value); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
