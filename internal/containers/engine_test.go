package containers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/testenv"
)

func TestServiceHostnames(t *testing.T) {
	for _, tc := range []struct {
		image, alias string
		want         []string
	}{
		{"postgres", "", []string{"postgres"}},
		{"postgres:16", "", []string{"postgres"}},
		{"tutum/wordpress:latest", "", []string{"tutum__wordpress", "tutum-wordpress"}},
		{"registry.example.com/group/db@sha256:abc", "", []string{"registry.example.com__group__db", "registry.example.com-group-db"}},
		// A registry port leaves a colon: not a host name, dropped.
		{"registry.example.com:5000/db:1", "", nil},
		{"redis:7", "cache", []string{"cache", "redis"}},
		{"redis:7", "cache, store kv", []string{"cache", "store", "kv", "redis"}},
		{"redis:7", "redis", []string{"redis"}},
		{"redis", "bad$alias", []string{"redis"}},
	} {
		got := containers.ServiceHostnames(tc.image, tc.alias)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ServiceHostnames(%q, %q) = %q, want %q", tc.image, tc.alias, got, tc.want)
		}
	}
}

// An image that cannot be had fails with GitLab Runner's message, after a
// warning per policy tried.
func TestEnsureImageMissing(t *testing.T) {
	e := testenv.ContainerEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var log bytes.Buffer
	err := e.EnsureImage(ctx, "localhost:1/kiln-test/absent:1", nil, &log)
	var pe *containers.PullError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a PullError", err)
	}
	if !strings.HasPrefix(err.Error(), `failed to pull image "localhost:1/kiln-test/absent:1" with specified policies [if-not-present]: `) {
		t.Errorf("message = %q", err)
	}
	for _, want := range []string{"Pulling docker image localhost:1/kiln-test/absent:1 ...", `WARNING: Failed to pull image with policy "if-not-present": `} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// never: no pull at all.
	log.Reset()
	err = e.EnsureImage(ctx, "localhost:1/kiln-test/absent:1", []string{"never"}, &log)
	if !errors.As(err, &pe) || strings.Contains(log.String(), "Pulling") {
		t.Errorf("never: err %v, log %q", err, log.String())
	}
	// A present image is used as is.
	testenv.TestImages(t, e)
	log.Reset()
	if err := e.EnsureImage(ctx, testenv.ImageBusybox, nil, &log); err != nil || !strings.Contains(log.String(), "Using locally found image") {
		t.Errorf("present image: %v %q", err, log.String())
	}
}

// A container on a job network reaches a service by alias; Sweep removes
// everything of its owner and nothing else.
func TestNetworkAliasAndSweep(t *testing.T) {
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := testenv.UniqueName("owner")
	labels := map[string]string{containers.LabelOwner: owner}
	nw, err := e.CreateNetwork(ctx, owner+"-net", labels)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := e.Create(ctx, containers.Spec{Name: owner + "-svc", Image: testenv.ImageService, Cmd: []string{"a", "b"},
		Env: []string{"GREETING=world"}, Network: nw, Aliases: containers.ServiceHostnames(testenv.ImageService, "db"), Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, svc); err != nil {
		t.Fatal(err)
	}
	job, err := e.Create(ctx, containers.Spec{Name: owner + "-job", Image: testenv.ImageBusybox, Network: nw, Labels: labels, Attach: true,
		Cmd: []string{"sh", "-c", "for i in $(seq 1 50); do nc db 8080 </dev/null && nc localhost__kiln-test__service 8080 </dev/null && exit 0; sleep 0.2; done; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := e.Run(ctx, job, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("job: code %d err %v out %q", code, err, out.String())
	}
	if got := out.String(); got != "hello world serve a b\nhello world serve a b\n" {
		t.Errorf("output %q", got)
	}
	other := testenv.UniqueName("other")
	keep, err := e.Create(ctx, containers.Spec{Name: other, Image: testenv.ImageBusybox, Cmd: []string{"true"},
		Labels: map[string]string{containers.LabelOwner: other}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Remove(context.Background(), keep)
	n, err := e.Sweep(ctx, owner)
	if err != nil || n != 3 {
		t.Errorf("Sweep = %d, %v; want 3 (two containers, one network)", n, err)
	}
	if ids, _ := e.List(ctx, containers.LabelOwner, owner); len(ids) != 0 {
		t.Errorf("left after Sweep: %v", ids)
	}
	if ids, _ := e.List(ctx, containers.LabelOwner, other); len(ids) != 1 {
		t.Errorf("another owner's container: %v", ids)
	}
}

// BenchmarkRunContainer measures what one script step costs in
// containers: create, attach, start, wait and remove a container that
// runs `true`.
func BenchmarkRunContainer(b *testing.B) {
	e := testenv.ContainerEngine(b)
	testenv.TestImages(b, e)
	ctx := context.Background()
	for b.Loop() {
		id, err := e.Create(ctx, containers.Spec{Image: testenv.ImageBusybox, Cmd: []string{"true"}, Attach: true})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := e.Run(ctx, id, io.Discard, io.Discard); err != nil || code != 0 {
			b.Fatal(code, err)
		}
		if err := e.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
