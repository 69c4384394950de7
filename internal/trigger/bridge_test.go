package trigger

import "testing"

func TestExpandKnown(t *testing.T) {
	vals := map[string]string{"BUILD_VERSION": "1.2.3", "EMPTY": ""}
	for in, want := range map[string]string{
		"$BUILD_VERSION":             "1.2.3",
		"v${BUILD_VERSION}-rc":       "v1.2.3-rc",
		"$BUILD_VERSION_X":           "$BUILD_VERSION_X",
		"$CI_COMMIT_SHA":             "$CI_COMMIT_SHA",
		"$$BUILD_VERSION":            "$$BUILD_VERSION",
		"[$EMPTY]":                   "[]",
		"${BUILD_VERSION":            "${BUILD_VERSION",
		"plain":                      "plain",
		"$BUILD_VERSION/$OTHER/${X}": "1.2.3/$OTHER/${X}",
	} {
		if got := expandKnown(in, vals); got != want {
			t.Errorf("expandKnown(%q) = %q, want %q", in, got, want)
		}
	}
}
