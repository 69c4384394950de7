package access

import (
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

func TestRunnerRights(t *testing.T) {
	for _, tc := range []struct {
		typ         string
		admin       bool
		level       int
		see, manage bool
	}{
		{"project_type", false, Maintainer, true, true},
		{"project_type", false, Owner, true, true},
		{"project_type", false, Developer, false, false}, // demoted: neither sees nor manages
		{"project_type", false, NoAccess, false, false},  // removed, whoever created it
		{"project_type", true, NoAccess, true, true},
		{"group_type", false, Owner, true, true},
		{"group_type", false, Maintainer, false, false},
		{"instance_type", false, NoAccess, true, false},
		{"instance_type", false, Owner, true, false},
		{"instance_type", true, NoAccess, true, true},
		{"weird_type", false, Owner, false, false},
	} {
		see, manage := RunnerRights(tc.typ, tc.admin, tc.level)
		if see != tc.see || manage != tc.manage {
			t.Errorf("RunnerRights(%s, admin=%v, %d) = %v, %v; want %v, %v", tc.typ, tc.admin, tc.level, see, manage, tc.see, tc.manage)
		}
	}
}

func TestRunnerTakesTags(t *testing.T) {
	cases := []struct {
		tags     []string
		untagged bool
		job      []string
		want     bool
	}{
		{nil, true, nil, true},
		{[]string{"linux"}, false, nil, false},
		{[]string{"linux", "gpu"}, false, []string{"gpu"}, true},
		{[]string{"linux"}, true, []string{"linux", "gpu"}, false},
		{nil, true, []string{"linux"}, false},
	}
	for _, c := range cases {
		r := &store.Runner{Tags: c.tags, RunUntagged: c.untagged}
		if got := RunnerTakesTags(r, c.job); got != c.want {
			t.Errorf("runner %v untagged=%v, job %v: %v, want %v", c.tags, c.untagged, c.job, got, c.want)
		}
	}
}
