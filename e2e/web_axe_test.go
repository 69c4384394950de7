package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core release vendored in testdata/axe (see
// SOURCES.md there).
const axeVersion = "4.14.1"

// axeTags is the rule set the UI must pass: WCAG 2.0, 2.1 and 2.2 A and AA
// (colour contrast, names and labels, ARIA attributes and roles, lists,
// ...) and axe's best practices (landmarks, heading order, one h1, regions).
// docs/ui.md names any rule left out and why; none is today.
const axeTags = `['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa', 'best-practice']`

// axeRun runs axe-core on the page and returns its violations, one line per
// element: rule, impact, CSS target and what failed. Empty when clean.
const axeRun = `axe.run(document, {runOnly: {type: 'tag', values: ` + axeTags + `}, resultTypes: ['violations']})
  .then(r => r.violations.flatMap(v => v.nodes.map(n =>
    v.id + ' (' + v.impact + ') ' + n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\s+/g, ' '))).join('\n'))`

// loadAxe reads the vendored axe-core once per test.
func loadAxe(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// axeAudit injects axe-core into the current page (once per document) and
// stores its violations in out.
func axeAudit(src string, out *string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		loaded, err := chromedp.Evaluate[bool](`typeof axe !== 'undefined'`)(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		if !loaded {
			if _, err := chromedp.Evaluate[chromedp.Void](src)(ctx, t); err != nil {
				return chromedp.Void{}, err
			}
		}
		version, err := chromedp.Evaluate[string](`axe.version`)(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		if version != axeVersion {
			return chromedp.Void{}, fmt.Errorf("axe-core %s loaded, want %s", version, axeVersion)
		}
		*out, err = chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise)(ctx, t)
		return chromedp.Void{}, err
	}
}
