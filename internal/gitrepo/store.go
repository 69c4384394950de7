// Package gitrepo hosts bare git repositories on local disk for Kiln.
//
// Reads on the CI hot path (refs, commits, blobs, trees) are served in-process
// with go-git from a per-repository cache of opened object storages; pushes and
// clones go through git's own smart-HTTP implementation (git-http-backend),
// because re-implementing receive-pack's safety checks is not worth the risk.
// HTTP routing, authentication and authorization belong to the caller.
package gitrepo

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Defaults for the tunables exposed as Options.
const (
	DefaultMaxFileSize    int64 = 10 << 20
	DefaultMaxPushSize    int64 = 1 << 30
	DefaultMaxFetchBody   int64 = 32 << 20
	DefaultMaxOpenRepos         = 256
	DefaultObjectCacheMiB       = 8

	// initialBranch is HEAD's target for new repositories, as on GitLab.
	initialBranch = "main"
	// stateDir holds Store-private files under root. Its leading dot makes it
	// unreachable through any valid repository path.
	stateDir = ".kiln"
)

// Option tunes a Store.
type Option func(*config)

type config struct {
	gitBin         string
	httpBackend    string
	maxFileSize    int64
	maxPushSize    int64
	maxFetchBody   int64
	maxOpenRepos   int
	objectCacheMiB int
}

// WithGitBinary sets the git executable used for Create (default "git" from PATH).
func WithGitBinary(path string) Option { return func(c *config) { c.gitBin = path } }

// WithHTTPBackend sets the git-http-backend executable (default: found in
// `git --exec-path`).
func WithHTTPBackend(path string) Option { return func(c *config) { c.httpBackend = path } }

// WithMaxFileSize caps the blob size ReadFile will return (ErrFileTooLarge above it).
func WithMaxFileSize(n int64) Option { return func(c *config) { c.maxFileSize = n } }

// WithMaxPushSize caps the (decompressed) receive-pack request body; larger
// pushes get HTTP 413. git enforces the same cap on the pack via receive.maxInputSize.
func WithMaxPushSize(n int64) Option { return func(c *config) { c.maxPushSize = n } }

// WithMaxFetchBody caps the (decompressed) upload-pack negotiation body.
func WithMaxFetchBody(n int64) Option { return func(c *config) { c.maxFetchBody = n } }

// WithMaxOpenRepos bounds how many repositories keep an opened storage (and
// its pack file descriptors and object cache) at once.
func WithMaxOpenRepos(n int) Option { return func(c *config) { c.maxOpenRepos = n } }

// WithObjectCacheMiB sets the per-repository decoded object cache size.
func WithObjectCacheMiB(n int) Option { return func(c *config) { c.objectCacheMiB = n } }

// Store manages bare repositories below a root directory. It is safe for
// concurrent use.
type Store struct {
	root     string
	hooksDir string
	tmpDir   string
	log      *slog.Logger
	cfg      config

	mu      sync.Mutex
	handles map[string]*list.Element // value: *handle
	lru     *list.List
	writers map[string]*writeLock
}

// handle is one repository's opened go-git storage. go-git's filesystem
// storage lazily builds maps (pack indexes, open packs) without locking, so
// every use is serialized by mu.
type handle struct {
	name string
	dir  string

	mu        sync.Mutex
	st        *filesystem.Storage
	packStamp time.Time
	evicted   bool
}

type writeLock struct {
	mu   sync.Mutex
	refs int
}

// New returns a Store rooted at root, creating the directory if needed.
func New(root string, log *slog.Logger, opts ...Option) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := config{
		gitBin:         "git",
		maxFileSize:    DefaultMaxFileSize,
		maxPushSize:    DefaultMaxPushSize,
		maxFetchBody:   DefaultMaxFetchBody,
		maxOpenRepos:   DefaultMaxOpenRepos,
		objectCacheMiB: DefaultObjectCacheMiB,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxOpenRepos < 1 {
		cfg.maxOpenRepos = 1
	}
	if root == "" {
		return nil, fmt.Errorf("%w: empty root", ErrInvalidPath)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	// Resolve the root once so the symlink checks below compare real paths;
	// the root itself may legitimately be a symlink (e.g. to a data volume).
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, err
	}
	s := &Store{
		root:     abs,
		hooksDir: filepath.Join(abs, stateDir, "hooks"),
		tmpDir:   filepath.Join(abs, stateDir, "tmp"),
		log:      log,
		cfg:      cfg,
		handles:  make(map[string]*list.Element),
		lru:      list.New(),
		writers:  make(map[string]*writeLock),
	}
	if cfg.httpBackend == "" {
		out, err := exec.Command(cfg.gitBin, "--exec-path").Output()
		if err != nil {
			return nil, fmt.Errorf("gitrepo: locating git exec path: %w", err)
		}
		s.cfg.httpBackend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, err
	}
	if err := s.installHooks(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root returns the absolute, symlink-resolved root directory.
func (s *Store) Root() string { return s.root }

// Close releases all cached repository storages.
func (s *Store) Close() error {
	s.mu.Lock()
	var hs []*handle
	for _, el := range s.handles {
		hs = append(hs, el.Value.(*handle))
	}
	s.handles = make(map[string]*list.Element)
	s.lru.Init()
	s.mu.Unlock()
	for _, h := range hs {
		h.evict()
	}
	return nil
}

// validateRepoPath enforces GitLab-like namespace/project path rules. Since
// every segment must start with [A-Za-z0-9_] and may not end in .git, no
// valid path can address "..", a dot directory, or the inside of another
// repository's "<name>.git" directory.
func validateRepoPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty repository path", ErrInvalidPath)
	}
	if len(p) > 1024 {
		return fmt.Errorf("%w: repository path too long", ErrInvalidPath)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: absolute repository path", ErrInvalidPath)
	}
	if strings.Contains(p, "..") {
		return fmt.Errorf("%w: %q contains \"..\"", ErrInvalidPath, p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if err := validateSegment(seg); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidPath, p, err)
		}
	}
	return nil
}

func validateSegment(seg string) error {
	if seg == "" {
		return errors.New("empty segment")
	}
	if len(seg) > 255 {
		return errors.New("segment too long")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i == 0 && !alnum {
			return fmt.Errorf("segment %q must start with a letter, digit or '_'", seg)
		}
		if !alnum && c != '.' && c != '-' {
			return fmt.Errorf("segment %q contains a forbidden character", seg)
		}
	}
	low := strings.ToLower(seg)
	if strings.HasSuffix(low, ".git") || strings.HasSuffix(low, ".atom") {
		return fmt.Errorf("segment %q ends in .git or .atom", seg)
	}
	return nil
}

func (s *Store) repoDir(repo string) string {
	return filepath.Join(s.root, filepath.FromSlash(repo)+".git")
}

// checkDirs verifies that every existing directory on the way from root to
// the repository is a real directory, not a symlink that could point outside
// root. It returns fs.ErrNotExist (wrapped) for the first missing component.
func (s *Store) checkDirs(repo string) error {
	segs := strings.Split(repo, "/")
	segs[len(segs)-1] += ".git"
	cur := s.root
	for _, seg := range segs {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
			return fmt.Errorf("%w: %q is not a plain directory", ErrInvalidPath, cur)
		}
	}
	return nil
}

// openRepoDir validates repo and returns its directory if it is an existing
// repository reachable without symlinks.
func (s *Store) openRepoDir(repo string) (string, error) {
	if err := validateRepoPath(repo); err != nil {
		return "", err
	}
	if err := s.checkDirs(repo); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: %s", ErrRepoNotFound, repo)
		}
		return "", err
	}
	dir := s.repoDir(repo)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return "", fmt.Errorf("%w: %s", ErrRepoNotFound, repo)
	}
	return dir, nil
}

func (s *Store) lockWrite(names ...string) (unlock func()) {
	// Sorted, deduplicated acquisition order avoids deadlocks in Rename.
	uniq := make([]string, 0, len(names))
	for _, n := range names {
		if !containsString(uniq, n) {
			uniq = append(uniq, n)
		}
	}
	if len(uniq) == 2 && uniq[1] < uniq[0] {
		uniq[0], uniq[1] = uniq[1], uniq[0]
	}
	locks := make([]*writeLock, len(uniq))
	s.mu.Lock()
	for i, n := range uniq {
		wl := s.writers[n]
		if wl == nil {
			wl = &writeLock{}
			s.writers[n] = wl
		}
		wl.refs++
		locks[i] = wl
	}
	s.mu.Unlock()
	for _, wl := range locks {
		wl.mu.Lock()
	}
	// Then across processes: replicas sharing the repositories directory
	// (a shared volume) serialize their writes to one repository too, so
	// that a push's before/after ref snapshots see only its own changes.
	var files []*os.File
	for _, n := range uniq {
		if f := s.lockFile(n); f != nil {
			files = append(files, f)
		}
	}
	return func() {
		for i := len(files) - 1; i >= 0; i-- {
			_ = syscall.Flock(int(files[i].Fd()), syscall.LOCK_UN)
			files[i].Close()
		}
		for i := len(locks) - 1; i >= 0; i-- {
			locks[i].mu.Unlock()
		}
		s.mu.Lock()
		for i, n := range uniq {
			locks[i].refs--
			if locks[i].refs == 0 {
				delete(s.writers, n)
			}
		}
		s.mu.Unlock()
	}
}

// lockFile takes an exclusive flock(2) on the repository's lock file
// under <root>/.kiln/locks (named by a hash of the path, so it exists
// before the repository does and outlives renames), blocking until other
// processes release it. A file system without working locks logs a
// warning and leaves only the in-process lock.
func (s *Store) lockFile(repo string) *os.File {
	sum := sha256.Sum256([]byte(repo))
	dir := filepath.Join(s.root, stateDir, "locks")
	path := filepath.Join(dir, hex.EncodeToString(sum[:16])+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err == nil {
		for {
			if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX); !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		s.log.Warn("gitrepo: no cross-process write lock; replicas sharing this directory may misattribute concurrent pushes", "repo", repo, "err", err)
		return nil
	}
	return f
}

func containsString(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// handleFor returns the cached handle for repo, creating and LRU-evicting as needed.
func (s *Store) handleFor(repo string) *handle {
	s.mu.Lock()
	if el, ok := s.handles[repo]; ok {
		s.lru.MoveToFront(el)
		h := el.Value.(*handle)
		s.mu.Unlock()
		return h
	}
	h := &handle{name: repo}
	s.handles[repo] = s.lru.PushFront(h)
	var victims []*handle
	for s.lru.Len() > s.cfg.maxOpenRepos {
		el := s.lru.Back()
		v := el.Value.(*handle)
		s.lru.Remove(el)
		delete(s.handles, v.name)
		victims = append(victims, v)
	}
	s.mu.Unlock()
	for _, v := range victims {
		v.evict()
	}
	return h
}

// forget drops repo's cached storage so the next read reopens it from disk.
func (s *Store) forget(repo string) {
	s.mu.Lock()
	el, ok := s.handles[repo]
	if ok {
		s.lru.Remove(el)
		delete(s.handles, repo)
	}
	s.mu.Unlock()
	if ok {
		el.Value.(*handle).evict()
	}
}

func (h *handle) evict() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evicted = true
	h.closeLocked()
}

func (h *handle) closeLocked() {
	if h.st != nil {
		_ = h.st.Close()
		h.st = nil
	}
}

func (s *Store) openLocked(h *handle) error {
	dir, err := s.openRepoDir(h.name)
	if err != nil {
		return err
	}
	h.dir = dir
	h.packStamp = packDirStamp(dir)
	// KeepDescriptors: pack files stay open across calls (and stay readable
	// even if a concurrent gc unlinks them). ExclusiveAccess stays off so
	// loose objects written by pushes are found without reopening.
	h.st = filesystem.NewStorageWithOptions(
		osfs.New(dir),
		cache.NewObjectLRU(cache.FileSize(s.cfg.objectCacheMiB)*cache.MiByte),
		filesystem.Options{KeepDescriptors: true},
	)
	return nil
}

func packDirStamp(dir string) time.Time {
	fi, err := os.Stat(filepath.Join(dir, "objects", "pack"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// withRepo runs fn with repo's storage under the handle lock. go-git indexes
// pack files once per storage, so objects in packs written later by an
// external git process are invisible to it; when fn fails and the pack
// directory changed since the storage was opened, fn is retried once on a
// freshly opened storage. Successful reads never pay for that check.
func (s *Store) withRepo(ctx context.Context, repo string, fn func(st *filesystem.Storage) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateRepoPath(repo); err != nil {
		return err
	}
	for {
		h := s.handleFor(repo)
		h.mu.Lock()
		if h.evicted {
			h.mu.Unlock()
			continue
		}
		err := s.runLocked(ctx, h, fn)
		if err != nil && errors.Is(err, ErrRepoNotFound) {
			// Don't keep handles for names that don't exist: hostile callers
			// could otherwise churn the cache with made-up names.
			h.evicted = true
			h.mu.Unlock()
			s.forgetIfSame(repo, h)
			return err
		}
		h.mu.Unlock()
		return err
	}
}

func (s *Store) forgetIfSame(repo string, h *handle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.handles[repo]; ok && el.Value.(*handle) == h {
		s.lru.Remove(el)
		delete(s.handles, repo)
	}
}

func (s *Store) runLocked(ctx context.Context, h *handle, fn func(st *filesystem.Storage) error) (err error) {
	defer func() {
		// go-git has panicked on corrupt objects in the past; a hostile push
		// must not take the server down.
		if r := recover(); r != nil {
			h.closeLocked()
			err = fmt.Errorf("gitrepo: internal error reading %s: %v", h.name, r)
		}
	}()
	if h.st == nil {
		if err := s.openLocked(h); err != nil {
			return err
		}
	}
	err = fn(h.st)
	if err == nil || ctx.Err() != nil || packDirStamp(h.dir).Equal(h.packStamp) {
		return err
	}
	h.closeLocked()
	if oerr := s.openLocked(h); oerr != nil {
		return oerr
	}
	return fn(h.st)
}

// gitEnv is the environment for git processes we spawn: isolated from the
// host user's and system configuration so behaviour does not depend on the
// machine, plus command-level config that repository config cannot override.
func (s *Store) gitEnv(extra ...string) []string {
	cfg := [][2]string{
		{"core.hooksPath", s.hooksDir},
		{"receive.fsckObjects", "true"},
		{"receive.maxInputSize", fmt.Sprint(s.cfg.maxPushSize)},
		{"receive.advertisePushOptions", "true"}, // pushoptions.go
	}
	env := []string{
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	} else {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	n := 0
	for _, kv := range cfg {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, kv[1]))
		n++
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, extra[i]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, extra[i+1]))
		n++
	}
	return append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", n))
}

// preReceiveHook rejects ref names with a component starting with '-'.
// git's check-ref-format accepts such names, but a ref like
// "refs/heads/--upload-pack=x" turns into an option when a CI job or a
// script later passes the branch name to git unquoted. A pre-receive hook is
// the cleanest place: git runs it after receiving the pack but before
// updating any ref, the whole push is refused atomically, and the client sees
// the reason. Filtering the pkt-line command list ourselves would mean
// re-implementing receive-pack's framing, capabilities and report-status, and
// undoing refs afterwards would briefly expose them. The hook lives in a
// Store-owned directory wired in through command-level core.hooksPath, so a
// repository's own config or hooks directory cannot disable it.
const preReceiveHook = `#!/bin/sh
# Installed by kiln (internal/gitrepo). Do not edit: rewritten at startup.
# No pathname expansion: protected-ref patterns are globs for case, not files.
set -f
status=0
while read -r old new ref; do
	for pat in $KILN_PROTECTED_REFS; do
		case "$ref" in
		$pat)
			echo "kiln: you are not allowed to push to the protected ref '$ref'" >&2
			status=1
			;;
		esac
	done
	case "/$ref" in
	*/-*)
		echo "kiln: refusing ref '$ref': a name component starts with '-'" >&2
		status=1
		;;
	esac
	# Branch and tag names GitLab refuses (gitrepo.CheckNewRefName).
	name=
	case "$ref" in
	refs/heads/*) name=${ref#refs/heads/} ;;
	refs/tags/*) name=${ref#refs/tags/} ;;
	refs/pipelines/*)
		echo "kiln: refusing ref '$ref': refs/pipelines/ is kept by the server" >&2
		status=1
		;;
	esac
	if [ -n "$name" ]; then
		case "$name" in
		refs/*)
			echo "kiln: refusing ref '$ref': a branch or tag name cannot start with 'refs/'" >&2
			status=1
			;;
		HEAD)
			echo "kiln: refusing ref '$ref': a branch or tag cannot be named HEAD" >&2
			status=1
			;;
		*[!0-9a-fA-F]*) ;;
		*)
			if [ ${#name} -eq 40 ] || [ ${#name} -eq 64 ]; then
				echo "kiln: refusing ref '$ref': a branch or tag name cannot be a 40- or 64-character hexadecimal string" >&2
				status=1
			fi
			;;
		esac
	fi
done
exit $status
`

func (s *Store) installHooks() error {
	if err := os.MkdirAll(s.hooksDir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.hooksDir, "pre-receive"), []byte(withPushOptionsHook(preReceiveHook)), 0o755)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, mode)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
	}
	return werr
}

// Create initializes an empty bare repository whose HEAD is refs/heads/main.
func (s *Store) Create(ctx context.Context, repo string) error {
	if err := validateRepoPath(repo); err != nil {
		return err
	}
	unlock := s.lockWrite(repo)
	defer unlock()
	err := s.checkDirs(repo)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrRepoExists, repo)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dir := s.repoDir(repo)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// Re-check after MkdirAll: the parents must still be plain directories.
	if err := s.checkDirs(repo); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Initialize under a dot-name (unreachable as a repository path) and
	// rename into place, so a half-initialized repository is never visible.
	tmp, err := os.MkdirTemp(parent, ".tmp-create-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, s.cfg.gitBin, "init", "--bare", "--quiet", "--template=",
		"--initial-branch="+initialBranch, tmp)
	cmd.Env = s.gitEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gitrepo: git init %s: %w: %s", repo, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrRepoExists, repo)
		}
		return err
	}
	s.log.Info("gitrepo: created repository", "repo", repo)
	return nil
}

// Delete removes a repository and prunes now-empty parent group directories.
func (s *Store) Delete(ctx context.Context, repo string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock := s.lockWrite(repo)
	defer unlock()
	dir, err := s.openRepoDir(repo)
	if err != nil {
		return err
	}
	s.forget(repo)
	// Move aside first so the repository disappears atomically even if the
	// recursive removal is slow or fails halfway.
	trash, err := os.MkdirTemp(s.tmpDir, "delete-*")
	if err != nil {
		return err
	}
	target := filepath.Join(trash, "repo.git")
	if err := os.Rename(dir, target); err != nil {
		_ = os.Remove(trash)
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		s.log.Warn("gitrepo: removing deleted repository", "repo", repo, "err", err)
	}
	s.pruneEmptyParents(filepath.Dir(dir))
	s.log.Info("gitrepo: deleted repository", "repo", repo)
	return nil
}

// Rename moves a repository to a new path (e.g. a project transfer).
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validateRepoPath(to); err != nil {
		return err
	}
	unlock := s.lockWrite(from, to)
	defer unlock()
	src, err := s.openRepoDir(from)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	err = s.checkDirs(to)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrRepoExists, to)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	dst := s.repoDir(to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := s.checkDirs(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	s.forget(from)
	s.forget(to)
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	s.pruneEmptyParents(filepath.Dir(src))
	s.log.Info("gitrepo: renamed repository", "from", from, "to", to)
	return nil
}

func (s *Store) pruneEmptyParents(dir string) {
	for dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
