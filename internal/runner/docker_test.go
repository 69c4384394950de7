package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/testenv"
)

// dockerRunner starts an agent whose executor is the docker executor on
// the test engine, with a fresh owner label; it returns the executor.
func dockerRunner(t *testing.T, fs *fakeServer) DockerExecutor {
	t.Helper()
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	d := DockerExecutor{Engine: e, Owner: testenv.UniqueName("runnertest")}
	startRunner(t, fs, func(c *Config) { c.Executor = d })
	return d
}

func dockerJob(fs *fakeServer, id int64, image string, script ...string) *client.JobResponse {
	job := fs.newJob(id, script...)
	if image != "" {
		job.Image = &client.Image{Name: image}
	}
	job.Features.FailureReasons = append(job.Features.FailureReasons, client.FailureImagePull)
	return job
}

// leftovers counts the containers and networks of d's owner.
func leftovers(t *testing.T, d DockerExecutor) (int, int) {
	t.Helper()
	ctx := context.Background()
	ids, err := d.Engine.List(ctx, containers.LabelOwner, d.Owner)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := d.Engine.Networks(ctx, containers.LabelOwner, d.Owner)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids), len(nets)
}

// Each job runs in its own image with that image's shell: bash where
// there is one, sh otherwise; none sees the host's files or environment;
// what it writes to the build dir is archived by the agent.
func TestDockerImagesShellAndArtifacts(t *testing.T) {
	fs := newFakeServer(t)
	t.Setenv("HOST_ONLY_SETTING", "host-value")
	d := dockerRunner(t, fs)
	bash := dockerJob(fs, 301, testenv.ImageBash,
		`echo "shell=${BASH_VERSION:+bash}"`,
		`test ! -e /etc/debian_version && echo "no host files"`,
		`echo "host env=${HOST_ONLY_SETTING:-unset} job var=$JOB_VAR file=$(cat "$JOB_FILE")"`,
		`test "$PWD" = "$CI_PROJECT_DIR" && mkdir -p out && echo from-bash > out/a.txt`)
	bash.Variables = append(bash.Variables, client.Variable{Key: "JOB_VAR", Value: "jv"}, client.Variable{Key: "JOB_FILE", Value: "fv", File: true})
	bash.Artifacts = []client.Artifact{{Name: "out", Paths: []string{"out/"}, ArtifactFormat: "zip", ArtifactType: "archive"}}
	bash.Steps = append(bash.Steps, client.Step{Name: "after_script", Script: []string{`echo "after status=$CI_JOB_STATUS"`}, When: "always"})
	fs.addJob(bash)
	final, trace := fs.waitFinal(t, 301, 60*time.Second)
	if final.State != client.StateSuccess {
		t.Fatalf("bash job: %+v\n%s", final, trace)
	}
	for _, want := range []string{"Using Docker executor with image " + testenv.ImageBash, "shell=bash\n", "no host files\n",
		"host env=unset job var=jv file=fv\n", "after status=success\n"} {
		if !strings.Contains(trace, want) {
			t.Errorf("bash job trace lacks %q:\n%s", want, trace)
		}
	}
	fs.mu.Lock()
	up := fs.uploads[301]
	fs.mu.Unlock()
	if len(up) != 1 || zipEntries(t, up[0].body)["out/a.txt"] != "from-bash\n" {
		t.Errorf("artifacts: %v", up)
	}

	sh := dockerJob(fs, 302, testenv.ImageBusybox, `echo "shell=${BASH_VERSION:-sh}"`, `exit 3`)
	fs.addJob(sh)
	final, trace = fs.waitFinal(t, 302, 60*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureScript || final.ExitCode != 3 || !strings.Contains(trace, "shell=sh\n") {
		t.Fatalf("busybox job: %+v\n%s", final, trace)
	}
	if c, n := leftovers(t, d); c != 0 || n != 0 {
		t.Errorf("%d containers and %d networks left", c, n)
	}
	// The runner tells the server what it is.
	if i := final.Info; i.Executor != "docker" || !i.Features.Image || !i.Features.Services || !i.Features.ServiceVariables {
		t.Errorf("runner info: %+v", i)
	}
}

// Services are reachable by alias and GitLab's derived names, get the
// job's variables and their own, and run their command; the job's
// entrypoint can be cleared.
func TestDockerServices(t *testing.T) {
	fs := newFakeServer(t)
	d := dockerRunner(t, fs)
	job := dockerJob(fs, 311, "",
		`for i in $(seq 1 50); do nc db 8080 </dev/null >/dev/null 2>&1 && break; sleep 0.2; done`,
		`nc db 8080 </dev/null`,
		`nc localhost__kiln-test__service 8080 </dev/null`,
		`nc localhost-kiln-test-service 8080 </dev/null`,
		`for i in $(seq 1 50); do nc second 8080 </dev/null >/dev/null 2>&1 && break; sleep 0.2; done`,
		`nc second 8080 </dev/null`)
	// The job's image is the service image: its entrypoint (the server)
	// would run instead of the script unless cleared.
	job.Image = &client.Image{Name: testenv.ImageService, Entrypoint: []string{""}}
	job.Variables = append(job.Variables, client.Variable{Key: "GREETING", Value: "job-level"})
	job.Services = []client.Image{
		{Name: testenv.ImageService, Alias: "db", Command: []string{"arg1", "arg2"},
			Variables: []client.Variable{{Key: "GREETING", Value: "service-level"}}},
		// busybox has no entrypoint: the service's own makes it a server,
		// and it sees the job's variables.
		{Name: testenv.ImageBusybox, Alias: "second", Entrypoint: []string{"/bin/serve"}, Command: []string{"x"}},
	}
	fs.addJob(job)
	final, trace := fs.waitFinal(t, 311, 60*time.Second)
	if final.State != client.StateSuccess {
		t.Fatalf("%+v\n%s", final, trace)
	}
	if n := strings.Count(trace, "hello service-level serve arg1 arg2\n"); n != 3 {
		t.Errorf("service answered %d times, want 3:\n%s", n, trace)
	}
	if !strings.Contains(trace, "hello job-level serve x\n") {
		t.Errorf("second service:\n%s", trace)
	}
	if !strings.Contains(trace, "Starting service "+testenv.ImageService) {
		t.Errorf("trace:\n%s", trace)
	}
	if c, n := leftovers(t, d); c != 0 || n != 0 {
		t.Errorf("%d containers and %d networks left", c, n)
	}
}

// An image that cannot be pulled fails the job as GitLab Runner does.
func TestDockerMissingImage(t *testing.T) {
	fs := newFakeServer(t)
	d := dockerRunner(t, fs)
	job := dockerJob(fs, 321, "localhost:1/kiln-test/absent:1", "echo not-reached")
	job.Services = []client.Image{{Name: testenv.ImageService}}
	fs.addJob(job)
	final, trace := fs.waitFinal(t, 321, 60*time.Second)
	if final.State != client.StateFailed || final.FailureReason != client.FailureImagePull {
		t.Fatalf("%+v\n%s", final, trace)
	}
	for _, want := range []string{"Pulling docker image localhost:1/kiln-test/absent:1 ...",
		`WARNING: Failed to pull image with policy "if-not-present": `,
		`ERROR: Job failed: failed to pull image "localhost:1/kiln-test/absent:1" with specified policies [if-not-present]: `} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	if strings.Contains(trace, "not-reached") {
		t.Error("script ran")
	}
	if c, n := leftovers(t, d); c != 0 || n != 0 {
		t.Errorf("%d containers and %d networks left (the service started before the pull failed)", c, n)
	}
}

// Timeout and cancel stop and remove the job's containers and network.
func TestDockerTimeoutAndCancelCleanUp(t *testing.T) {
	fs := newFakeServer(t)
	d := dockerRunner(t, fs)
	svc := []client.Image{{Name: testenv.ImageService, Alias: "db"}}
	timeout := dockerJob(fs, 331, testenv.ImageBusybox, "echo started-331", "sleep 300")
	timeout.Services, timeout.RunnerInfo.Timeout = svc, 3
	cancel := dockerJob(fs, 332, testenv.ImageBusybox, "echo started-332", "sleep 300")
	cancel.Services = svc
	fs.mu.Lock()
	fs.cancelOn[332] = [2]string{"started-332\n", "canceled"}
	fs.mu.Unlock()
	fs.addJob(timeout)
	waitTrace(t, fs, 331, "started-331\n")
	if c, n := leftovers(t, d); c != 2 || n != 1 {
		t.Errorf("while running: %d containers and %d networks, want 2 and 1", c, n)
	}
	final, trace := fs.waitFinal(t, 331, 60*time.Second)
	if final.FailureReason != client.FailureTimeout {
		t.Fatalf("%+v\n%s", final, trace)
	}
	if c, n := leftovers(t, d); c != 0 || n != 0 {
		t.Errorf("after timeout: %d containers and %d networks left", c, n)
	}
	fs.addJob(cancel)
	waitTrace(t, fs, 332, "started-332\n")
	start := time.Now()
	final, trace = fs.waitFinal(t, 332, 60*time.Second)
	if !strings.Contains(trace, "ERROR: Job failed: canceled") {
		t.Fatalf("%+v\n%s", final, trace)
	}
	// The service ignores SIGTERM: removal must not wait out the
	// engine's 10 s stop timeout.
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("cancel and cleanup took %v", el)
	}
	if c, n := leftovers(t, d); c != 0 || n != 0 {
		t.Errorf("after cancel: %d containers and %d networks left", c, n)
	}
}

// A runner that cannot honour image: and services: says so first thing.
func TestShellExecutorWarnsAboutImage(t *testing.T) {
	fs := newFakeServer(t)
	job := fs.newJob(341, "echo ran")
	job.Image = &client.Image{Name: "node:20-alpine"}
	job.Services = []client.Image{{Name: "postgres:16"}}
	fs.addJob(job)
	startRunner(t, fs, nil)
	final, trace := fs.waitFinal(t, 341, 30*time.Second)
	if final.State != client.StateSuccess {
		t.Fatalf("%+v\n%s", final, trace)
	}
	lines := strings.SplitN(trace, "\n", 5)
	if len(lines) < 4 || !strings.Contains(lines[2], `WARNING: this job names image: node:20-alpine and services: postgres:16, but this runner's "shell" executor runs the script on the runner's host`) {
		t.Errorf("first lines:\n%s", strings.Join(lines[:min(4, len(lines))], "\n"))
	}
}

// The runner's default image serves jobs that name none.
func TestDockerDefaultImage(t *testing.T) {
	fs := newFakeServer(t)
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	d := DockerExecutor{Engine: e, Owner: testenv.UniqueName("runnertest"), DefaultImage: testenv.ImageBusybox}
	startRunner(t, fs, func(c *Config) { c.Executor = d })
	fs.addJob(dockerJob(fs, 351, "", `if test -e /etc/debian_version; then echo on-host; else echo in-default-image; fi`))
	final, trace := fs.waitFinal(t, 351, 60*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "in-default-image\n") || !strings.Contains(trace, "Using Docker executor with image "+testenv.ImageBusybox) {
		t.Fatalf("%+v\n%s", final, trace)
	}
}

// Services' exposed ports are waited for before the script starts; one
// that never listens is reported and the job goes on.
func TestDockerServiceWait(t *testing.T) {
	fs := newFakeServer(t)
	e := testenv.ContainerEngine(t)
	testenv.TestImages(t, e)
	d := DockerExecutor{Engine: e, Owner: testenv.UniqueName("runnertest"), ServiceWait: 4 * time.Second}
	startRunner(t, fs, func(c *Config) { c.Executor = d })
	slow := dockerJob(fs, 361, testenv.ImageBusybox, `nc slow 8080 </dev/null`)
	slow.Services = []client.Image{{Name: testenv.ImageService, Alias: "slow", Variables: []client.Variable{{Key: "SERVE_DELAY", Value: "2"}}}}
	fs.addJob(slow)
	final, trace := fs.waitFinal(t, 361, 60*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "Waiting for services to be up and running (timeout 4 seconds)...") ||
		!strings.Contains(trace, "hello  serve \n") {
		t.Fatalf("%+v\n%s", final, trace)
	}
	never := dockerJob(fs, 362, testenv.ImageBusybox, `echo script-ran`)
	never.Services = []client.Image{{Name: testenv.ImageService, Alias: "never", Variables: []client.Variable{{Key: "SERVE_DELAY", Value: "300"}}}}
	fs.addJob(never)
	final, trace = fs.waitFinal(t, 362, 60*time.Second)
	if final.State != client.StateSuccess || !strings.Contains(trace, "*** WARNING: Service "+testenv.ImageService+" probably didn't start properly.") ||
		!strings.Contains(trace, "script-ran\n") {
		t.Fatalf("%+v\n%s", final, trace)
	}
}
