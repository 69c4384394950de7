package web

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kilnci/kiln/internal/store"
)

// stuckInfo explains why a pending job has not started, as GitLab's job
// page does, but naming the runners and tags involved.
type stuckInfo struct {
	Kind    string // "no-match", "offline" or "busy"
	Message string
	Runners []stuckRunner
}

type stuckRunner struct {
	Name   string
	Tags   string
	Online bool
}

// stuckTagsMatch is the runner API's tag rule: every job tag is a runner
// tag, and an untagged job needs a runner that runs untagged jobs.
func stuckTagsMatch(r *store.Runner, jobTags []string) bool {
	if len(jobTags) == 0 {
		return r.RunUntagged
	}
	for _, t := range jobTags {
		if !slices.Contains(r.Tags, t) {
			return false
		}
	}
	return true
}

// explainPending looks at the runners available to the job's project
// (instance runners, its own, its groups'), unpaused, and says which of
// three cases holds: none has the job's tags, none of those that do is
// online, or they are online and busy. Protected-runner rules are left out
// (the message then says "waiting").
func (w *Web) explainPending(q *req, j *store.Job) (*stuckInfo, error) {
	if j.Status != "pending" || j.Kind == "bridge" {
		return nil, nil
	}
	p := q.project
	var groups []int64
	parts := strings.Split(p.FullPath, "/")
	for i := 1; i < len(parts); i++ {
		if ns, err := w.Store.NamespaceByPath(q.ctx, strings.Join(parts[:i], "/")); err == nil && ns.Kind == "group" {
			groups = append(groups, ns.ID)
		}
	}
	runners, _, err := w.Store.ListRunners(q.ctx, store.RunnerFilter{ProjectIDs: []int64{p.ID}, GroupIDs: groups, InstanceToo: true}, store.Page{Number: 1, PerPage: 500})
	if err != nil {
		return nil, err
	}
	var all, matching, online []stuckRunner
	for _, r := range runners {
		if r.Paused {
			continue
		}
		sr := stuckRunner{Name: fmt.Sprintf("#%d", r.ID), Tags: strings.Join(r.Tags, ", "), Online: runnerOnline(r)}
		if r.Description != "" {
			sr.Name += " (" + r.Description + ")"
		}
		if sr.Tags == "" {
			sr.Tags = "no tags"
		}
		if !r.RunUntagged {
			sr.Tags += "; does not run untagged jobs"
		}
		all = append(all, sr)
		if stuckTagsMatch(r, j.Tags) {
			matching = append(matching, sr)
			if sr.Online {
				online = append(online, sr)
			}
		}
	}
	tags := "no tags"
	if len(j.Tags) > 0 {
		tags = "the tags " + strings.Join(j.Tags, ", ")
	}
	switch {
	case len(all) == 0:
		return &stuckInfo{Kind: "no-match", Message: "This job is stuck: no active runner is available to this project. Register one (Settings › CI/CD › Runners) or start the server with built-in runners."}, nil
	case len(matching) == 0:
		msg := "This job is stuck: it has " + tags + ", and no runner available to this project has all of them."
		if len(j.Tags) == 0 {
			msg = "This job is stuck: it has no tags, and no runner available to this project runs untagged jobs."
		}
		return &stuckInfo{Kind: "no-match", Message: msg, Runners: all}, nil
	case len(online) == 0:
		return &stuckInfo{Kind: "offline", Message: "This job is stuck: the runners that can run it (" + tags + ") are not online.", Runners: matching}, nil
	}
	return &stuckInfo{Kind: "busy", Message: fmt.Sprintf("Waiting for a free runner: %d online runner(s) can run this job (%s) and are busy with other jobs.", len(online), tags), Runners: online}, nil
}
