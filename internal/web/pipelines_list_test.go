package web

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

// TestPipelineListMiniGraphAndFamily: each row has one mini-graph dot per
// stage with the stage's status; a triggered pipeline shows its variables'
// names (never values); a child pipeline is listed right under its parent
// with a link up, and the parent links down to it.
func TestPipelineListMiniGraphAndFamily(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var parent, child, other *store.Pipeline
	err := f.st.Write(ctx, func(tx *store.Tx) error {
		parent = &store.Pipeline{ProjectID: f.project.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "trigger", Status: "running"}
		if err := tx.InsertPipeline(ctx, parent); err != nil {
			return err
		}
		if err := tx.InsertPipelineVariables(ctx, parent.ID, []store.PipelineVariable{{Key: "DEPLOY_TARGET", ValueEnc: "sealed-secret-value", VariableType: "env_var"}}); err != nil {
			return err
		}
		other = &store.Pipeline{ProjectID: f.project.ID, Ref: "main", SHA: strings.Repeat("b", 40), Source: "push", Status: "success"}
		if err := tx.InsertPipeline(ctx, other); err != nil {
			return err
		}
		child = &store.Pipeline{ProjectID: f.project.ID, Ref: "main", SHA: strings.Repeat("a", 40), Source: "parent_pipeline", Status: "pending", UpstreamPipelineID: parent.ID}
		if err := tx.InsertPipeline(ctx, child); err != nil {
			return err
		}
		for _, j := range []*store.Job{
			{PipelineID: parent.ID, Name: "build", Stage: "build", StageIdx: 1, Status: "success"},
			{PipelineID: parent.ID, Name: "lint", Stage: "test", StageIdx: 2, Status: "failed", AllowFailure: true},
			{PipelineID: parent.ID, Name: "unit", Stage: "test", StageIdx: 2, Status: "running"},
			{PipelineID: parent.ID, Name: "child", Stage: "deploy", StageIdx: 3, Status: "running", Kind: "bridge"},
			{PipelineID: child.ID, Name: "inner", Stage: "test", StageIdx: 1, Status: "pending"},
		} {
			j.ProjectID, j.Spec = f.project.ID, `{}`
			if j.Kind == "" {
				j.Kind = "build"
			}
			if err := tx.InsertJob(ctx, j); err != nil {
				return err
			}
			if j.Kind == "bridge" { // the bridge created the child
				if err := tx.SetJobDownstream(ctx, j.ID, child.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	f.signIn(c, "root", "password123")
	code, body := get(t, c, f.srv.URL+"/root/app/-/pipelines")
	if code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	rowRE := regexp.MustCompile(`(?s)<tr class="pipeline-row( child-row)?" data-pipeline-id="(\d+)">(.*?)</tr>`)
	var order []string
	rows := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		order = append(order, m[2]+m[1])
		rows[m[2]] = html.UnescapeString(m[3])
	}
	// Newest first, but the child right under its parent.
	want := []string{fmt.Sprint(other.ID), fmt.Sprint(parent.ID), fmt.Sprint(child.ID) + " child-row"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("row order %v, want %v", order, want)
	}
	p := rows[fmt.Sprint(parent.ID)]
	for _, w := range []string{
		`class="mini-stage ci-success" title="build: passed"`,
		`class="mini-stage ci-running" title="test: running"`,
		`class="mini-stage ci-running" title="deploy: running"`,
		`variables: <code class="var-key">DEPLOY_TARGET</code>`,
		fmt.Sprintf(`downstream: <a href="/root/app/-/pipelines/%d">root/app #%d</a>`, child.ID, child.ID),
	} {
		if !strings.Contains(p, w) {
			t.Errorf("parent row lacks %q:\n%s", w, p)
		}
	}
	if strings.Contains(body, "sealed-secret-value") {
		t.Error("a variable's value reached the list")
	}
	if ch := rows[fmt.Sprint(child.ID)]; !strings.Contains(ch, fmt.Sprintf(`upstream: <a href="/root/app/-/pipelines/%d">`, parent.ID)) || strings.Count(ch, "mini-stage") != 1 {
		t.Errorf("child row:\n%s", ch)
	}
}
