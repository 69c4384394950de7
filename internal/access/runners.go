package access

import (
	"context"
	"errors"
	"slices"

	"github.com/kilnci/kiln/internal/store"
)

// RunnerRights decides what a user may do with a runner, from the runner's
// type and the user's current level in the runner's project (project
// runners) or group (group runners): see it, and manage it (edit, pause,
// reset its token, delete it). As GitLab's project runner ownership:
// administrators any runner; a project runner its project's maintainers
// and owners; a group runner its group's owners; an instance runner is
// visible to every signed-in user and managed by administrators only. Who
// created the runner plays no part, so a maintainer removed from the
// project or demoted below maintainer loses it.
func RunnerRights(runnerType string, admin bool, level int) (see, manage bool) {
	if admin {
		return true, true
	}
	switch runnerType {
	case "instance_type":
		return true, false
	case "project_type":
		ok := level >= Maintainer
		return ok, ok
	case "group_type":
		ok := level >= Owner
		return ok, ok
	}
	return false, false
}

// Runner applies RunnerRights for u (nil: nobody) to run, looking up u's
// current level in the runner's project or group. A project runner whose
// project is gone is visible to administrators only.
func (a *Policy) Runner(ctx context.Context, u *store.User, run *store.Runner) (see, manage bool, err error) {
	if u == nil || (u.State != "" && u.State != "active") {
		return false, false, nil
	}
	level := NoAccess
	switch run.RunnerType {
	case "project_type":
		p, err := a.Store.ProjectByID(ctx, run.ProjectID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, false, err
		}
		if err == nil {
			if level, err = a.Level(ctx, p, u); err != nil {
				return false, false, err
			}
		}
	case "group_type":
		if level, err = a.GroupLevel(ctx, run.GroupID, u); err != nil {
			return false, false, err
		}
	}
	see, manage = RunnerRights(run.RunnerType, u.IsAdmin, level)
	return see, manage, nil
}

// RunnerTakesTags is GitLab's tag rule for handing a job to a runner:
// every job tag is one of the runner's tags, and an untagged job goes only
// to a runner that runs untagged jobs. The runner API assigns by it and a
// stuck job's explanation reads it.
func RunnerTakesTags(r *store.Runner, jobTags []string) bool {
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
