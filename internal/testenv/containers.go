package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/moby/moby/client"
)

// Test images, imported from a root filesystem built out of this
// machine's Debian packages (no registry is reachable from CI machines).
// The tag is bumped whenever their content changes.
const (
	// ImageBusybox has busybox-static's /bin/busybox and its applets
	// (sh, nc, ...): no bash.
	ImageBusybox = "localhost/kiln-test/busybox:3"
	// ImageBash is ImageBusybox plus the host's /bin/bash and its
	// libraries.
	ImageBash = "localhost/kiln-test/bash:3"
	// ImageService is ImageBusybox whose entrypoint serves TCP port 8080
	// (which it EXPOSEs), after $SERVE_DELAY seconds when that is set:
	// each connection gets "hello $GREETING" and the arguments it was
	// started with ("serve" then its command), one line.
	ImageService = "localhost/kiln-test/service:3"
)

// ContainerEngine connects to the container engine (DOCKER_HOST or the
// default sockets), or skips (fails under KILN_REQUIRE_SERVICES=1).
func ContainerEngine(t testing.TB) *containers.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := containers.Connect(ctx, "")
	if err != nil {
		missing(t, "a container engine (Docker API socket; bash .ci/run starts podman system service) ("+err.Error()+")")
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var imagesOnce sync.Mutex

// TestImages makes sure ImageBusybox, ImageBash and ImageService exist in
// the engine, importing them when missing.
func TestImages(t testing.TB, e *containers.Engine) {
	t.Helper()
	imagesOnce.Lock()
	defer imagesOnce.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := e.Client()
	have := func(ref string) bool { _, err := c.ImageInspect(ctx, ref); return err == nil }
	if have(ImageBusybox) && have(ImageBash) && have(ImageService) {
		return
	}
	bb, err := exec.LookPath("busybox")
	if err == nil {
		bb, err = filepath.EvalSymlinks(bb)
	}
	if err == nil && !isStatic(bb) {
		err = fmt.Errorf("%s is not statically linked", bb)
	}
	if err != nil {
		missing(t, "a static busybox for the test images (apt-get install busybox-static): "+err.Error())
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	applets := strings.Fields(string(out))
	base := func(extra func(tw *dedupTar)) []byte {
		var buf bytes.Buffer
		tw := &dedupTar{Writer: tar.NewWriter(&buf), seen: map[string]bool{}}
		dir := func(n string, mode int64) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n + "/", Mode: mode})
		}
		file := func(n string, mode int64, b []byte) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(b))})
			tw.Write(b)
		}
		for _, d := range []string{"bin", "etc", "root", "var", "usr", "usr/bin"} {
			dir(d, 0o755)
		}
		dir("tmp", 0o1777)
		b, err := os.ReadFile(bb)
		if err != nil {
			t.Fatal(err)
		}
		file("bin/busybox", 0o755, b)
		for _, a := range applets {
			if a != "busybox" {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
			}
		}
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
		file("etc/group", 0o644, []byte("root:x:0:\n"))
		file("bin/serve", 0o755, []byte("#!/bin/sh\n"+
			"[ -n \"$SERVE_DELAY\" ] && sleep \"$SERVE_DELAY\"\n"+
			"printf '#!/bin/sh\\necho \"hello $GREETING serve %s\"\\n' \"$*\" > /tmp/reply\n"+
			"chmod +x /tmp/reply\nexec nc -ll -p 8080 -e /tmp/reply\n"))
		if extra != nil {
			extra(tw)
		}
		tw.flush()
		return buf.Bytes()
	}
	imp := func(ref string, tarball []byte, changes ...string) {
		res, err := c.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, ref,
			client.ImageImportOptions{Changes: changes})
		if err != nil {
			t.Fatalf("import %s: %v", ref, err)
		}
		defer res.Close()
		if _, err := bytes.NewBuffer(nil).ReadFrom(res); err != nil {
			t.Fatalf("import %s: %v", ref, err)
		}
		if !have(ref) {
			t.Fatalf("import %s: image missing afterwards", ref)
		}
	}
	path := "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	imp(ImageBusybox, base(nil), path)
	imp(ImageService, base(nil), path, `ENTRYPOINT ["/bin/serve"]`, "EXPOSE 8080/tcp")
	imp(ImageBash, base(func(tw *dedupTar) {
		for _, p := range withLibs(t, "/bin/bash") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			dirs := strings.Split(strings.TrimPrefix(filepath.Dir(p), "/"), "/")
			for i := range dirs {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.Join(dirs[:i+1], "/") + "/", Mode: 0o755})
			}
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: 0o755, Size: int64(len(b))})
			tw.Write(b)
		}
		// /lib64 is a directory on Debian; the loader path must resolve.
	}), path)
}

func isStatic(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// withLibs returns bin and the shared libraries ldd lists for it (real
// paths of what the loader opens).
func withLibs(t testing.TB, bin string) []string {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	files := []string{bin}
	for line := range strings.SplitSeq(string(out), "\n") {
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	return files
}

// dedupTar writes each path once; a later entry replaces an earlier one
// (bash replaces busybox's bash applet).
type dedupTar struct {
	*tar.Writer
	seen  map[string]bool
	order []string
	hdrs  map[string]*tar.Header
	data  map[string][]byte
	cur   string
}

func (d *dedupTar) WriteHeader(h *tar.Header) error {
	if d.hdrs == nil {
		d.hdrs, d.data = map[string]*tar.Header{}, map[string][]byte{}
	}
	if !d.seen[h.Name] {
		d.seen[h.Name] = true
		d.order = append(d.order, h.Name)
	}
	d.hdrs[h.Name], d.data[h.Name], d.cur = h, nil, h.Name
	return nil
}

func (d *dedupTar) Write(b []byte) (int, error) {
	d.data[d.cur] = append(d.data[d.cur], b...)
	return len(b), nil
}

func (d *dedupTar) flush() {
	for _, n := range d.order {
		d.Writer.WriteHeader(d.hdrs[n])
		d.Writer.Write(d.data[n])
	}
	d.Writer.Close()
}
