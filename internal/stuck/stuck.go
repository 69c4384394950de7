// Package stuck explains why a pending job has not started, for the job
// page and for `kiln trigger --wait` (through the pipeline event stream):
// no runner available to the project has its tags, none of those that do
// is online, or they are all busy.
package stuck

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

// Kinds of explanation.
const (
	NoMatch = "no-match"
	Offline = "offline"
	Busy    = "busy"
)

// OnlineWindow is GitLab's rule: a runner that called in within two hours
// is online.
const OnlineWindow = 2 * time.Hour

// Explanation says why a pending job waits, naming the runners involved.
type Explanation struct {
	Kind    string   `json:"kind"`
	Message string   `json:"message"`
	Runners []Runner `json:"runners,omitempty"`
}

// Runner is a runner as an explanation lists it.
type Runner struct {
	Name   string `json:"name"`
	Tags   string `json:"tags"`
	Online bool   `json:"online"`
}

// Online reports whether r called in within OnlineWindow of now.
func Online(r *store.Runner, now time.Time) bool {
	return r.ContactedAt != nil && now.Sub(*r.ContactedAt) < OnlineWindow
}

// Explain looks at the runners available to project p (instance runners,
// its own, its groups'), unpaused, and says which of three cases holds for
// job j: none has the job's tags, none of those that do is online, or they
// are online and busy. It returns nil for a job that is not a pending
// build. Protected-runner rules are left out (the message then says
// "waiting").
func Explain(ctx context.Context, st *store.Store, p *store.Project, j *store.Job, now time.Time) (*Explanation, error) {
	if j.Status != "pending" || j.Kind == "bridge" {
		return nil, nil
	}
	runners, err := Available(ctx, st, p)
	if err != nil {
		return nil, err
	}
	return ExplainWith(runners, j, now), nil
}

// Available lists the runners available to project p: instance runners,
// its own and its groups' (paused ones included; ExplainWith skips them).
// Callers explaining many jobs of one project read them once.
func Available(ctx context.Context, st *store.Store, p *store.Project) ([]*store.Runner, error) {
	var groups []int64
	parts := strings.Split(p.FullPath, "/")
	for i := 1; i < len(parts); i++ {
		if ns, err := st.NamespaceByPath(ctx, strings.Join(parts[:i], "/")); err == nil && ns.Kind == "group" {
			groups = append(groups, ns.ID)
		}
	}
	runners, _, err := st.ListRunners(ctx, store.RunnerFilter{ProjectIDs: []int64{p.ID}, GroupIDs: groups, InstanceToo: true}, store.Page{Number: 1, PerPage: 500})
	return runners, err
}

// ExplainWith is Explain with the project's runners already read
// (Available).
func ExplainWith(runners []*store.Runner, j *store.Job, now time.Time) *Explanation {
	if j.Status != "pending" || j.Kind == "bridge" {
		return nil
	}
	var all, matching, online []Runner
	for _, r := range runners {
		if r.Paused {
			continue
		}
		sr := Runner{Name: fmt.Sprintf("#%d", r.ID), Tags: strings.Join(r.Tags, ", "), Online: Online(r, now)}
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
		if access.RunnerTakesTags(r, j.Tags) {
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
		return &Explanation{Kind: NoMatch, Message: "This job is stuck: no active runner is available to this project. Register one (Settings › CI/CD › Runners) or start the server with built-in runners."}
	case len(matching) == 0:
		msg := "This job is stuck: it has " + tags + ", and no runner available to this project has all of them."
		if len(j.Tags) == 0 {
			msg = "This job is stuck: it has no tags, and no runner available to this project runs untagged jobs."
		}
		return &Explanation{Kind: NoMatch, Message: msg, Runners: all}
	case len(online) == 0:
		return &Explanation{Kind: Offline, Message: "This job is stuck: the runners that can run it (" + tags + ") are not online.", Runners: matching}
	}
	return &Explanation{Kind: Busy, Message: fmt.Sprintf("Waiting for a free runner: %d online runner(s) can run this job (%s) and are busy with other jobs.", len(online), tags), Runners: online}
}
