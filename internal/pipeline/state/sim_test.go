package state

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Stage positions of GitLab's default stage list, which is what the
// conformance configs use unless they declare `stages:`.
const (
	stPre    = 0
	stBuild  = 1
	stTest   = 2
	stDeploy = 3
)

// epoch is the simulated clock's start.
func epoch() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// jobOpt tweaks a job built by mk.
type jobOpt func(*Job)

func needs(names ...string) jobOpt {
	return func(j *Job) {
		j.NeedsSet = true
		for _, n := range names {
			j.Needs = append(j.Needs, Need{Name: n})
		}
	}
}

func optionalNeed(name string) jobOpt {
	return func(j *Job) {
		j.NeedsSet = true
		j.Needs = append(j.Needs, Need{Name: name, Optional: true})
	}
}

func when(w string) jobOpt { return func(j *Job) { j.When = w } }

func allowFailure(j *Job) { j.AllowFailure = true }

func status(s Status) jobOpt { return func(j *Job) { j.Status = s } }

func retried(j *Job) { j.Retried = true }

func startIn(d time.Duration) jobOpt {
	return func(j *Job) { j.When = WhenDelayed; j.StartIn = d }
}

// pipeline builds jobs with IDs in declaration order, all created.
type spec struct {
	name  string
	stage int
	opts  []jobOpt
}

func job(name string, stage int, opts ...jobOpt) spec { return spec{name, stage, opts} }

func build(specs ...spec) []Job {
	jobs := make([]Job, len(specs))
	for i, s := range specs {
		jobs[i] = Job{ID: int64(i + 1), Name: s.name, StageIdx: s.stage, Status: Created}
		for _, o := range s.opts {
			o(&jobs[i])
		}
	}
	return jobs
}

// sim plays the store: it applies transitions, refusing invalid ones.
type sim struct {
	t    *testing.T
	jobs []Job
	now  time.Time
}

func newSim(t *testing.T, jobs []Job) *sim {
	t.Helper()
	return &sim{t: t, jobs: slices.Clone(jobs), now: epoch()}
}

func (s *sim) idx(name string) int {
	s.t.Helper()
	at := -1
	for i, j := range s.jobs {
		if j.Name == name && !j.Retried {
			at = i
		}
	}
	if at < 0 {
		s.t.Fatalf("no current job %q", name)
	}
	return at
}

func (s *sim) byID(id int64) int {
	s.t.Helper()
	for i, j := range s.jobs {
		if j.ID == id {
			return i
		}
	}
	s.t.Fatalf("no job id %d", id)
	return -1
}

func (s *sim) apply(trs []Transition) []string {
	s.t.Helper()
	var got []string
	for _, tr := range trs {
		i := s.byID(tr.JobID)
		j := &s.jobs[i]
		if j.Status != tr.From {
			s.t.Fatalf("transition %v: job %s is %s", tr, j.Name, j.Status)
		}
		if !Valid(tr.From, tr.To) {
			s.t.Fatalf("invalid transition %v for %s", tr, j.Name)
		}
		j.Status = tr.To
		j.ScheduledAt = tr.ScheduledAt
		got = append(got, fmt.Sprintf("%s %s->%s", j.Name, tr.From, tr.To))
	}
	return got
}

func (s *sim) advance() []string {
	s.t.Helper()
	return s.apply(Advance(s.jobs, s.now))
}

func (s *sim) run(name string) {
	s.t.Helper()
	s.apply([]Transition{{JobID: s.jobs[s.idx(name)].ID, From: Pending, To: Running}})
}

func (s *sim) finish(name string, result Status) {
	s.t.Helper()
	j := &s.jobs[s.idx(name)]
	to, ok := Finish(j.Status, result)
	if !ok {
		s.t.Fatalf("finish %s (%s) with %s refused", name, j.Status, result)
	}
	s.apply([]Transition{{JobID: j.ID, From: j.Status, To: to}})
}

func (s *sim) statuses() map[string]Status {
	m := map[string]Status{}
	for _, j := range s.jobs {
		if !j.Retried {
			m[j.Name] = j.Status
		}
	}
	return m
}

// waves runs the pipeline to rest: after each Advance, every pending job
// starts, and all of them finish with their result from results
// (success by default). Each wave is the sorted names started together,
// which captures the ordering constraints GitLab guarantees.
func (s *sim) waves(results map[string]Status) [][]string {
	s.t.Helper()
	var out [][]string
	for range 100 {
		moved := len(s.advance())
		var wave []string
		for _, j := range s.jobs {
			if !j.Retried && j.Status == Pending {
				wave = append(wave, j.Name)
			}
		}
		if len(wave) == 0 {
			if moved == 0 {
				return out
			}
			continue
		}
		slices.Sort(wave)
		for _, name := range wave {
			s.run(name)
		}
		for _, name := range wave {
			r, ok := results[name]
			if !ok {
				r = Success
			}
			s.finish(name, r)
		}
		out = append(out, wave)
	}
	s.t.Fatal("pipeline did not come to rest")
	return nil
}

func timeMinutes(n int) time.Duration { return time.Duration(n) * time.Minute }
