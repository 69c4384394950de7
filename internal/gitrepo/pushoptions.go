package gitrepo

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strings"
)

// Push is what one push did: its ref updates (sorted by ref name) and the
// push options the client sent (`git push -o ci.skip`), in order.
type Push struct {
	Updates []RefUpdate
	Options []string
}

// Limits on push options read back from the hook; git itself sends few.
const (
	maxPushOptions   = 100
	maxPushOptionLen = 4096
)

type pushOptionsFileKey struct{}

// ServeGitPush is ServeGit whose push callback also receives the push
// options. receive-pack advertises push-options (receive.advertisePushOptions
// is set on the command line, see gitEnv), hands them to hooks as
// GIT_PUSH_OPTION_<n>, and the Store's pre-receive hook writes them, one a
// line, to a per-request file named by KILN_PUSH_OPTIONS_FILE, which
// runBackend puts in git's environment. The file is read once the push is
// done and removed.
func (s *Store) ServeGitPush(w http.ResponseWriter, r *http.Request, repo, rest string, write bool, onPush func(Push)) {
	path := rest
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path != "/"+svcReceive || !write || r.Method != http.MethodPost {
		s.ServeGit(w, r, repo, rest, write, func(u []RefUpdate) { onPush(Push{Updates: u}) })
		return
	}
	var file string
	if err := os.MkdirAll(s.tmpDir, 0o700); err == nil {
		if f, err := os.CreateTemp(s.tmpDir, "push-options-*"); err == nil {
			file = f.Name()
			f.Close()
			defer os.Remove(file)
		}
	}
	if file == "" {
		// Options are lost, the push is not.
		s.log.Warn("gitrepo: cannot create the push options file", "repo", repo)
	} else {
		r = r.WithContext(context.WithValue(r.Context(), pushOptionsFileKey{}, file))
	}
	s.ServeGit(w, r, repo, rest, write, func(u []RefUpdate) {
		onPush(Push{Updates: u, Options: readPushOptions(file)})
	})
}

// pushOptionsEnv is the environment entry that tells the hook where to write
// the push options of this request, if any.
func pushOptionsEnv(ctx context.Context) []string {
	if f, _ := ctx.Value(pushOptionsFileKey{}).(string); f != "" {
		return []string{"KILN_PUSH_OPTIONS_FILE=" + f}
	}
	return nil
}

func readPushOptions(file string) []string {
	if file == "" {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxPushOptionLen)
	for sc.Scan() && len(out) < maxPushOptions {
		out = append(out, sc.Text())
	}
	return out
}

// pushOptionsHook writes GIT_PUSH_OPTION_0.. to $KILN_PUSH_OPTIONS_FILE
// (git refuses options containing a newline, so one a line is exact). It
// never fails the push.
const pushOptionsHook = `# Push options, for the server (see internal/gitrepo/pushoptions.go).
if [ -n "$KILN_PUSH_OPTIONS_FILE" ] && [ "${GIT_PUSH_OPTION_COUNT:-0}" -gt 0 ] 2>/dev/null; then
	i=0
	while [ "$i" -lt "$GIT_PUSH_OPTION_COUNT" ] && [ "$i" -lt 100 ]; do
		eval "printf '%s\n' \"\$GIT_PUSH_OPTION_$i\""
		i=$((i + 1))
	done >"$KILN_PUSH_OPTIONS_FILE" 2>/dev/null || :
fi
`

// withPushOptionsHook adds the push options part to a hook script, after
// its first (#!) line.
func withPushOptionsHook(script string) string {
	first, rest, _ := strings.Cut(script, "\n")
	return first + "\n" + pushOptionsHook + rest
}
