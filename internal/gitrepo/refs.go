package gitrepo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ZeroSHA is the all-zero object id git uses for "no object" in ref updates.
const ZeroSHA = "0000000000000000000000000000000000000000"

const (
	branchPrefix = "refs/heads/"
	tagPrefix    = "refs/tags/"
)

// Ref is a branch or tag resolved to the commit it designates.
type Ref struct {
	Name string // short name, e.g. "main", "feature/x", "v1.0"
	Full string // full name, e.g. "refs/heads/main"
	SHA  string // commit id (annotated tags are peeled)
	Tag  bool
}

// RefUpdate is one ref changed by a push. Before is ZeroSHA for a created
// ref, After is ZeroSHA for a deleted one. Annotated tags report the tag
// object id, as git does.
type RefUpdate struct {
	Ref    string
	Before string
	After  string
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// looksLikeSHA matches full SHA-1 and SHA-256 object ids.
func looksLikeSHA(s string) bool {
	return (len(s) == 40 || len(s) == 64) && isHex(s)
}

func parseSHA(sha string) (plumbing.Hash, error) {
	if len(sha) != 40 || !isHex(sha) {
		return plumbing.ZeroHash, fmt.Errorf("%w: %q", ErrInvalidSHA, sha)
	}
	return plumbing.NewHash(strings.ToLower(sha)), nil
}

func isZeroSHA(sha string) bool {
	return sha == "" || strings.Trim(sha, "0") == "" && (len(sha) == 40 || len(sha) == 64)
}

// checkRefName applies git check-ref-format rules to a full ref name, plus
// Kiln's rule that no component may start with '-' (option injection).
func checkRefName(full string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidRef, full, why) }
	if !strings.HasPrefix(full, "refs/") {
		return bad("not under refs/")
	}
	if len(full) > 1024 {
		return bad("too long")
	}
	for i := 0; i < len(full); i++ {
		c := full[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return bad("forbidden character")
		}
	}
	if strings.Contains(full, "..") || strings.Contains(full, "@{") {
		return bad(`contains ".." or "@{"`)
	}
	if strings.HasSuffix(full, ".") || strings.HasSuffix(full, "/") {
		return bad("ends with '.' or '/'")
	}
	for seg := range strings.SplitSeq(full, "/") {
		switch {
		case seg == "":
			return bad("empty component")
		case seg[0] == '.' || seg[0] == '-':
			return bad("component starts with '.' or '-'")
		case strings.HasSuffix(seg, ".lock"):
			return bad("component ends with .lock")
		}
	}
	if len(full) == len("refs/") {
		return bad("empty")
	}
	return nil
}

// CheckNewRefName applies the rules GitLab applies to a new branch or tag
// name, given short ("main", "release/1.0"): git check-ref-format for the
// full ref, and further no name that starts with "refs/" (a branch
// "refs/heads/main" would be ambiguous with main wherever a full ref is
// accepted), no "HEAD", and no 40- or 64-character hexadecimal name (it
// reads as a commit id). The pre-receive hook enforces the same rules on
// pushes (preReceiveHook).
func CheckNewRefName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidRef, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case strings.HasPrefix(name, "refs/"):
		return bad("starts with refs/")
	case name == "HEAD":
		return bad("is HEAD")
	case looksLikeSHA(name):
		return bad("is a 40- or 64-character hexadecimal name")
	}
	return checkRefName(branchPrefix + name)
}

// checkPushedRef applies CheckNewRefName to a pushed branch or tag.
func checkPushedRef(full string) error {
	if err := checkRefName(full); err != nil {
		return err
	}
	for _, prefix := range []string{branchPrefix, tagPrefix} {
		if name, ok := strings.CutPrefix(full, prefix); ok {
			return CheckNewRefName(name)
		}
	}
	return nil
}

// ResolveRef resolves a branch or tag name ("main", "feature/x", "v1.0", or
// fully qualified "refs/heads/x" / "refs/tags/x") to a commit. A branch wins
// over a tag of the same name, as on GitLab. SHAs, "HEAD" and other ref
// namespaces are rejected with errors wrapping ErrInvalidRef.
func (s *Store) ResolveRef(ctx context.Context, repo, name string) (Ref, error) {
	var candidates []string
	switch {
	case name == "":
		return Ref{}, fmt.Errorf("%w: empty name", ErrInvalidRef)
	case name == "HEAD" || name == "refs/HEAD":
		return Ref{}, ErrRefIsHEAD
	case looksLikeSHA(name):
		return Ref{}, ErrRefIsSHA
	case strings.HasPrefix(name, branchPrefix), strings.HasPrefix(name, tagPrefix):
		candidates = []string{name}
	case strings.HasPrefix(name, "refs/"):
		return Ref{}, fmt.Errorf("%w: %q is neither a branch nor a tag", ErrInvalidRef, name)
	default:
		candidates = []string{branchPrefix + name, tagPrefix + name}
	}
	for _, c := range candidates {
		if err := checkRefName(c); err != nil {
			return Ref{}, err
		}
		if c == branchPrefix+"HEAD" {
			return Ref{}, ErrRefIsHEAD
		}
	}
	var out Ref
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		for _, c := range candidates {
			ref, err := storer.ResolveReference(st, plumbing.ReferenceName(c))
			if errors.Is(err, plumbing.ErrReferenceNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("gitrepo: resolving %s: %w", c, err)
			}
			out, err = makeRef(st, c, ref.Hash())
			return err
		}
		return fmt.Errorf("%w: %s", ErrRefNotFound, name)
	})
	return out, err
}

func makeRef(st *filesystem.Storage, full string, h plumbing.Hash) (Ref, error) {
	r := Ref{Full: full, SHA: h.String()}
	switch {
	case strings.HasPrefix(full, branchPrefix):
		// receive-pack refuses non-commits under refs/heads, so branch tips
		// need no object read on this hot path.
		r.Name = strings.TrimPrefix(full, branchPrefix)
	case strings.HasPrefix(full, tagPrefix):
		r.Name = strings.TrimPrefix(full, tagPrefix)
		r.Tag = true
		c, err := peelToCommit(st, h)
		if err != nil {
			return Ref{}, fmt.Errorf("tag %s: %w", r.Name, err)
		}
		r.SHA = c.String()
	default:
		r.Name = full
	}
	return r, nil
}

// peelToCommit follows annotated tags (bounded, tags may chain) to a commit.
func peelToCommit(st *filesystem.Storage, h plumbing.Hash) (plumbing.Hash, error) {
	for range 8 {
		obj, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: %s: %v", ErrCommitNotFound, h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return h, nil
		case plumbing.TagObject:
			tag, err := object.DecodeTag(st, obj)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			h = tag.Target
		default:
			return plumbing.ZeroHash, fmt.Errorf("%w: %s is a %s", ErrCommitNotFound, h, obj.Type())
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("%w: tag chain too deep", ErrCommitNotFound)
}

// Branches lists branches sorted by name.
func (s *Store) Branches(ctx context.Context, repo string) ([]Ref, error) {
	return s.listRefs(ctx, repo, branchPrefix)
}

// Tags lists tags sorted by name, peeled to commits. Tags that do not
// resolve to a commit are skipped.
func (s *Store) Tags(ctx context.Context, repo string) ([]Ref, error) {
	return s.listRefs(ctx, repo, tagPrefix)
}

func (s *Store) listRefs(ctx context.Context, repo, prefix string) ([]Ref, error) {
	var out []Ref
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		out = out[:0]
		refs, err := storageRefs(st, prefix)
		if err != nil {
			return err
		}
		for _, r := range refs {
			name := r.Name().String()
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if r.Type() == plumbing.SymbolicReference {
				rr, err := storer.ResolveReference(st, r.Name())
				if err != nil {
					continue // dangling symref: not a listable branch
				}
				r = rr
			}
			ref, err := makeRef(st, name, r.Hash())
			if err != nil {
				continue
			}
			out = append(out, ref)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// refSnapshot maps full ref names to their (unpeeled) object ids.
func (s *Store) refSnapshot(ctx context.Context, repo string) (map[string]string, error) {
	snap := make(map[string]string)
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		clear(snap)
		refs, err := storageRefs(st)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if r.Type() == plumbing.HashReference {
				snap[r.Name().String()] = r.Hash().String()
			}
		}
		return nil
	})
	return snap, err
}

// IsEmpty reports whether the repository has no branches and no tags.
func (s *Store) IsEmpty(ctx context.Context, repo string) (bool, error) {
	empty := true
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		empty = true
		refs, err := storageRefs(st, branchPrefix, tagPrefix)
		if err != nil {
			return err
		}
		for _, r := range refs {
			n := r.Name().String()
			if strings.HasPrefix(n, branchPrefix) || strings.HasPrefix(n, tagPrefix) {
				empty = false
				break
			}
		}
		return nil
	})
	return empty, err
}

// DefaultBranch returns the branch HEAD points to. The branch may not exist
// yet in an empty repository.
func (s *Store) DefaultBranch(ctx context.Context, repo string) (string, error) {
	var branch string
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		head, err := st.Reference(plumbing.HEAD)
		if err != nil {
			return fmt.Errorf("gitrepo: reading HEAD: %w", err)
		}
		t := head.Target().String()
		if head.Type() != plumbing.SymbolicReference || !strings.HasPrefix(t, branchPrefix) {
			return fmt.Errorf("%w: HEAD is not a symbolic ref to a branch", ErrRefNotFound)
		}
		branch = strings.TrimPrefix(t, branchPrefix)
		return nil
	})
	return branch, err
}

// SetDefaultBranch points HEAD at refs/heads/<branch>. The branch must exist
// unless the repository has no branches yet (pre-seeding the first push).
func (s *Store) SetDefaultBranch(ctx context.Context, repo, branch string) error {
	full := branchPrefix + branch
	if err := checkRefName(full); err != nil {
		return err
	}
	if strings.HasPrefix(branch, "refs/") || branch == "HEAD" {
		return fmt.Errorf("%w: %q is not a branch name", ErrInvalidRef, branch)
	}
	if err := validateRepoPath(repo); err != nil {
		return err
	}
	unlock := s.lockWrite(repo)
	defer unlock()
	branches, err := s.Branches(ctx, repo)
	if err != nil {
		return err
	}
	if len(branches) > 0 && !hasRef(branches, full) {
		return fmt.Errorf("%w: branch %s", ErrRefNotFound, branch)
	}
	return s.writeHEAD(repo, full)
}

func hasRef(refs []Ref, full string) bool {
	for _, r := range refs {
		if r.Full == full {
			return true
		}
	}
	return false
}

func (s *Store) writeHEAD(repo, full string) error {
	dir, err := s.openRepoDir(repo)
	if err != nil {
		return err
	}
	return writeLocked(filepath.Join(dir, "HEAD"), []byte("ref: "+full+"\n"))
}

// UpdateRef creates or moves fullRef (e.g. "refs/pipelines/12") to the
// commit sha. Writes use git's lock-file protocol so they are safe against
// concurrent git processes.
func (s *Store) UpdateRef(ctx context.Context, repo, fullRef, sha string) error {
	if err := checkRefName(fullRef); err != nil {
		return err
	}
	h, err := parseSHA(sha)
	if err != nil {
		return err
	}
	if err := validateRepoPath(repo); err != nil {
		return err
	}
	unlock := s.lockWrite(repo)
	defer unlock()
	var dir string
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		dir = st.Filesystem().Root()
		if _, err := object.GetCommit(st, h); err != nil {
			return fmt.Errorf("%w: %s", ErrCommitNotFound, sha)
		}
		// git refuses "refs/a" next to "refs/a/b"; check packed refs too,
		// which the file system alone would not reveal. Only refs below
		// fullRef and its own ancestors can conflict, so only those are read.
		below, err := storageRefs(st, fullRef+"/")
		if err != nil {
			return err
		}
		if len(below) > 0 {
			return fmt.Errorf("%w: %s conflicts with existing ref %s", ErrInvalidRef, fullRef, below[0].Name())
		}
		for i := len("refs/"); i < len(fullRef); i++ {
			if fullRef[i] != '/' {
				continue
			}
			anc := fullRef[:i]
			_, err := st.Reference(plumbing.ReferenceName(anc))
			switch {
			case err == nil:
				return fmt.Errorf("%w: %s conflicts with existing ref %s", ErrInvalidRef, fullRef, anc)
			case !errors.Is(err, plumbing.ErrReferenceNotFound):
				return fmt.Errorf("gitrepo: reading %s: %w", anc, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.FromSlash(fullRef))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidRef, fullRef, err)
	}
	return writeLocked(path, []byte(h.String()+"\n"))
}

// DeleteRef removes fullRef, both its loose file and any packed-refs entry.
func (s *Store) DeleteRef(ctx context.Context, repo, fullRef string) error {
	if err := checkRefName(fullRef); err != nil {
		return err
	}
	if err := validateRepoPath(repo); err != nil {
		return err
	}
	unlock := s.lockWrite(repo)
	defer unlock()
	return s.deleteRefLocked(ctx, repo, fullRef)
}

func (s *Store) deleteRefLocked(ctx context.Context, repo, fullRef string) error {
	var dir string
	err := s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		dir = st.Filesystem().Root()
		_, err := st.Reference(plumbing.ReferenceName(fullRef))
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return fmt.Errorf("%w: %s", ErrRefNotFound, fullRef)
		}
		return err
	})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.FromSlash(fullRef))
	// The ref may exist only in packed-refs, with no loose directory left
	// to hold the lock file.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	lock, err := acquireLock(path)
	if err != nil {
		return err
	}
	defer lock.release()
	if err := removePackedRef(dir, fullRef); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Prune now-empty directories like git does, but keep refs/<namespace>.
	refsRoot := filepath.Join(dir, "refs")
	for d := filepath.Dir(path); filepath.Dir(d) != refsRoot && strings.HasPrefix(d, refsRoot+string(filepath.Separator)); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// fileLock is git's "<file>.lock" protocol: O_EXCL creation is the lock and
// renaming the lock file over the target commits the new content.
type fileLock struct {
	path string
	f    *os.File
}

func acquireLock(path string) (*fileLock, error) {
	deadline := time.Now().Add(time.Second)
	for {
		f, err := os.OpenFile(path+".lock", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return &fileLock{path: path, f: f}, nil
		}
		if !errors.Is(err, fs.ErrExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("gitrepo: locking %s: %w", filepath.Base(path), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *fileLock) commit(data []byte) error {
	_, err := l.f.Write(data)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err == nil {
		err = os.Rename(l.path+".lock", l.path)
	}
	if err != nil {
		_ = os.Remove(l.path + ".lock")
	}
	return err
}

func (l *fileLock) release() {
	if l.f != nil {
		_ = l.f.Close()
		_ = os.Remove(l.path + ".lock")
	}
}

func writeLocked(path string, data []byte) error {
	l, err := acquireLock(path)
	if err != nil {
		return err
	}
	return l.commit(data)
}

// removePackedRef rewrites packed-refs without fullRef (and its "^" peeled
// line), under packed-refs.lock as git does.
func removePackedRef(dir, fullRef string) error {
	path := filepath.Join(dir, "packed-refs")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Contains(data, []byte(" "+fullRef+"\n")) {
		return nil
	}
	l, err := acquireLock(path)
	if err != nil {
		return err
	}
	defer l.release()
	// Re-read under the lock: the first read only decided whether to lock.
	if data, err = os.ReadFile(path); err != nil {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	skipping := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "^") {
			if !skipping {
				out.WriteString(line + "\n")
			}
			continue
		}
		_, name, ok := strings.Cut(line, " ")
		skipping = ok && !strings.HasPrefix(line, "#") && name == fullRef
		if !skipping {
			out.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return l.commit(out.Bytes())
}
