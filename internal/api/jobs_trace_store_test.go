package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/testenv"
	"github.com/kilnci/kiln/internal/traces"
)

// TestJobTraceObjectStoreDown: GET /projects/:id/jobs/:job_id/trace of a
// finished job whose log is archived in the object store (a real
// SeaweedFS) answers 503 with GitLab's {"message": ...} naming the object
// store, and Retry-After, while SeaweedFS is stopped (not a bare 500), and
// the log again once it is back.
func TestJobTraceObjectStoreDown(t *testing.T) {
	weed := testenv.SeaweedFS(t)
	bucket := weed.NewBucket(t)
	objs, err := blob.NewS3(blob.S3Config{Endpoint: weed.Endpoint, Bucket: bucket, Region: weed.Region,
		AccessKey: weed.AccessKey, SecretKey: weed.SecretKey, StallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := newCIEnv(t, map[string]string{".gitlab-ci.yml": "build:\n  script: echo hi\n"})
	tr := traces.New(e.st, objs, 1<<20)
	e.api.Runners.Traces = tr
	base := "/api/v4/projects/group%2Fapp"
	pl := obj(e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"}))
	id := jobIDs(e.expect(200, "reporter", "GET", base+fmt.Sprintf("/pipelines/%d/jobs", num(pl["id"])), nil))["build"]
	ctx := context.Background()
	if _, err := tr.Append(ctx, id, 0, []byte("archived build output\n")); err != nil {
		t.Fatal(err)
	}
	e.finish(id, "success")
	if err := tr.ArchivePass(ctx); err != nil {
		t.Fatal(err)
	}
	path := base + fmt.Sprintf("/jobs/%d/trace", id)
	if code, body, _ := e.doRaw("reporter", "GET", path, nil); code != 200 || string(body) != "archived build output\n" {
		t.Fatalf("archived log with the object store up: %d %q", code, body)
	}

	weed.Stop(t)
	start := time.Now()
	code, body, hdr := e.doRaw("reporter", "GET", path, nil)
	var m struct{ Message string }
	json.Unmarshal(body, &m)
	if code != 503 || !strings.Contains(m.Message, "object store unavailable") || hdr.Get("Retry-After") == "" {
		t.Errorf("archived log with the object store stopped: %d %s (Retry-After %q), want 503 {\"message\": \"... object store unavailable ...\"} with Retry-After", code, body, hdr.Get("Retry-After"))
	}
	t.Logf("stopped: %d %s in %s", code, strings.TrimSpace(string(body)), time.Since(start).Round(time.Millisecond))

	weed.Start(t)
	if code, body, _ := e.doRaw("reporter", "GET", path, nil); code != 200 || string(body) != "archived build output\n" {
		t.Fatalf("archived log with the object store back: %d %q", code, body)
	}
}
