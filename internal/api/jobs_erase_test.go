package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/sweep"
	"github.com/kilnci/kiln/internal/traces"
)

// Erasing a job deletes its log and artifacts archive, not only the row's
// references to them.
func TestJobEraseDeletesFiles(t *testing.T) {
	e := newCIEnv(t, map[string]string{".gitlab-ci.yml": "build:\n  script: echo hi\n"})
	dir := t.TempDir()
	objs, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := traces.New(e.st, objs, 1<<20)
	ar := artifacts.New(objs, 1<<20)
	e.api.Runners.Traces, e.api.Runners.Artifacts = tr, ar
	sw := sweep.New(sweep.Config{Store: e.st, JobFiles: []sweep.Files{tr, ar}})
	e.api.FilesDeleted = func(ctx context.Context) { sw.Sweep(ctx) }
	base := "/api/v4/projects/group%2Fapp"
	pl := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"}))
	id := jobIDs(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d/jobs", num(pl["id"])), nil))["build"]

	ctx := context.Background()
	if _, err := tr.Append(ctx, id, 0, []byte("secret build output\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Save(ctx, id, "artifacts.zip", strings.NewReader("PK fake zip")); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Write(ctx, func(tx *store.Tx) error { return tx.SetJobArtifacts(ctx, id, "artifacts.zip", 11, nil) }); err != nil {
		t.Fatal(err)
	}
	e.finish(id, "success")
	// Archived: the log is the file traces/<id>.log of the blob store now.
	if err := tr.ArchivePass(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "traces", fmt.Sprint(id)+".log")); err != nil {
		t.Fatalf("archived log: %v", err)
	}
	code, body, _ := e.doRaw("reporter", "GET", base+fmt.Sprintf("/jobs/%d/trace", id), nil)
	if code != 200 || !strings.Contains(string(body), "secret build output") {
		t.Fatalf("trace before erase: %d %q", code, body)
	}

	e.expect(201, "maintainer", "POST", base+fmt.Sprintf("/jobs/%d/erase", id), nil)
	code, body, _ = e.doRaw("reporter", "GET", base+fmt.Sprintf("/jobs/%d/trace", id), nil)
	if code != 200 || len(body) != 0 {
		t.Fatalf("trace after erase: %d %q", code, body)
	}
	if n := tr.Size(ctx, id); n != 0 {
		t.Fatalf("trace size after erase: %d", n)
	}
	if f, _, err := ar.Open(ctx, id, "artifacts.zip"); !errors.Is(err, blob.ErrNotFound) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("artifacts after erase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "artifacts", fmt.Sprint(id))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("artifacts dir after erase: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "traces"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), fmt.Sprint(id)+".") {
			t.Fatalf("trace file %s left after erase", en.Name())
		}
	}
}
