package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestZZProbe(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	build := filepath.Join(data, "builds", "p")
	os.MkdirAll(build, 0o755)
	os.WriteFile(filepath.Join(data, "secrets.key"), []byte("k"), 0o600)
	ex := SandboxExecutor{Hide: []string{data}}
	s, err := ex.Prepare(context.Background(), ExecJob{BuildDir: build, TmpDir: filepath.Join(data, "builds", "p.tmp"), KillGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	var out bytes.Buffer
	script := `id; echo "--ps"; ls /proc | head -20; echo "--sock"; ls -la /run/podman; (exec 3<>/dev/tcp/127.0.0.1/5432 && echo PG-REACHABLE) 2>&1;
python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.connect("/run/podman/podman.sock");print("PODMAN-CONNECTED")' 2>&1 | tail -1;
echo "--abstract"; cat /proc/net/unix | grep "@" | head -5; echo "--data"; ls -la ` + data + `; ls ` + dir + `;
echo "--caps"; grep Cap /proc/self/status; echo "--mounts"; grep -c . /proc/self/mounts; cat /proc/1/cmdline | tr '\0' ' '; echo; ls /root 2>&1 | head -3; ls /work 2>&1 | head; ls /tmp`
err = s.Run(context.Background(), Cmd{Args: []string{"bash", "-c", script}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: &out})
	t.Logf("err=%v\n%s", err, out.String())
}
