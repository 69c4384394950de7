package runnerapi

import (
	"slices"
	"testing"
)

func TestCacheKeys(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		key                  string
		fallback             []string
		separated, protected bool
		wantKey              string
		wantFallback         []string
	}{
		{"protected ref", "deps", []string{"f1"}, true, true, "deps-protected", []string{"f1-protected"}},
		{"unprotected ref", "deps", []string{"f1", "f2"}, true, false, "deps-non_protected", []string{"f1-non_protected", "f2-non_protected"}},
		{"variables stay for the runner", "$CI_COMMIT_REF_SLUG", nil, true, false, "$CI_COMMIT_REF_SLUG-non_protected", []string{}},
		{"a key already ending in -protected", "deps-protected", nil, true, false, "deps-protected-non_protected", []string{}},
		{"setting off", "deps", []string{"f1"}, false, true, "deps", []string{"f1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, f := cacheKeys(tc.key, tc.fallback, tc.separated, tc.protected)
			if k != tc.wantKey || !slices.Equal(f, tc.wantFallback) {
				t.Errorf("cacheKeys(%q, %q, %v, %v) = %q, %q; want %q, %q", tc.key, tc.fallback, tc.separated, tc.protected, k, f, tc.wantKey, tc.wantFallback)
			}
		})
	}
}
