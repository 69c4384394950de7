package gitrepo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Commit is the metadata of one commit, shaped after GitLab's commit API.
type Commit struct {
	SHA            string
	Parents        []string
	Title          string // first line of Message
	Message        string // full raw message
	Description    string // Message without the title line, trimmed
	AuthorName     string
	AuthorEmail    string
	AuthoredAt     time.Time
	CommitterName  string
	CommitterEmail string
	CommittedAt    time.Time
}

// cleanFilePath normalizes an in-repository path. A single leading "/" is
// accepted because GitLab's include:local paths are written that way.
func cleanFilePath(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" || len(p) > 4096 {
		return "", fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return "", fmt.Errorf("%w: control character in %q", ErrInvalidPath, p)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: %q", ErrInvalidPath, p)
		}
	}
	return p, nil
}

func getCommit(st *filesystem.Storage, h plumbing.Hash) (*object.Commit, error) {
	c, err := object.GetCommit(st, h)
	if err != nil {
		if err == plumbing.ErrObjectNotFound {
			return nil, fmt.Errorf("%w: %s", ErrCommitNotFound, h)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrCommitNotFound, h, err)
	}
	return c, nil
}

// findEntry walks the tree path segment by segment; a missing component
// anywhere yields ErrFileNotFound.
func findEntry(st *filesystem.Storage, root *object.Tree, path string) (object.TreeEntry, error) {
	t := root
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		var found *object.TreeEntry
		for j := range t.Entries {
			if t.Entries[j].Name == seg {
				found = &t.Entries[j]
				break
			}
		}
		if found == nil {
			return object.TreeEntry{}, fmt.Errorf("%w: %s", ErrFileNotFound, path)
		}
		if i == len(segs)-1 {
			return *found, nil
		}
		if found.Mode != filemode.Dir {
			return object.TreeEntry{}, fmt.Errorf("%w: %s", ErrFileNotFound, path)
		}
		sub, err := object.GetTree(st, found.Hash)
		if err != nil {
			return object.TreeEntry{}, fmt.Errorf("gitrepo: reading tree %s: %w", found.Hash, err)
		}
		t = sub
	}
	return object.TreeEntry{}, fmt.Errorf("%w: %s", ErrFileNotFound, path)
}

// ReadFile returns the content and blob id of path at commit sha. Only
// regular files are returned: directories, submodules and symlinks yield
// ErrFileNotFound (a symlink's target could point anywhere, and CI config
// must not be indirected through one). Blobs above the configured cap yield
// ErrFileTooLarge without being read.
func (s *Store) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, string, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return nil, "", err
	}
	p, err := cleanFilePath(path)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	var blobID string
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		c, err := getCommit(st, h)
		if err != nil {
			return err
		}
		tree, err := object.GetTree(st, c.TreeHash)
		if err != nil {
			return fmt.Errorf("gitrepo: reading tree: %w", err)
		}
		e, err := findEntry(st, tree, p)
		if err != nil {
			return err
		}
		switch e.Mode {
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		default:
			return fmt.Errorf("%w: %s is not a regular file", ErrFileNotFound, p)
		}
		size, err := st.EncodedObjectSize(e.Hash)
		if err != nil {
			return fmt.Errorf("gitrepo: blob %s: %w", e.Hash, err)
		}
		if size > s.cfg.maxFileSize {
			return fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrFileTooLarge, p, size, s.cfg.maxFileSize)
		}
		obj, err := st.EncodedObject(plumbing.BlobObject, e.Hash)
		if err != nil {
			return fmt.Errorf("gitrepo: blob %s: %w", e.Hash, err)
		}
		rd, err := obj.Reader()
		if err != nil {
			return err
		}
		defer rd.Close()
		data, err = io.ReadAll(io.LimitReader(rd, s.cfg.maxFileSize+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > s.cfg.maxFileSize {
			return fmt.Errorf("%w: %s", ErrFileTooLarge, p)
		}
		blobID = e.Hash.String()
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return data, blobID, nil
}

// Commit returns the metadata of commit sha.
func (s *Store) Commit(ctx context.Context, repo, sha string) (Commit, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return Commit{}, err
	}
	var out Commit
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		// An annotated tag's SHA (what a tag push reports) names the
		// commit it points at, as `git show <tag>^{commit}` does.
		h, err := peelToCommit(st, h)
		if err != nil {
			return err
		}
		c, err := getCommit(st, h)
		if err != nil {
			return err
		}
		title, rest, _ := strings.Cut(c.Message, "\n")
		out = Commit{
			SHA:            c.Hash.String(),
			Title:          strings.TrimRight(title, "\r "),
			Message:        c.Message,
			Description:    strings.TrimSpace(rest),
			AuthorName:     c.Author.Name,
			AuthorEmail:    c.Author.Email,
			AuthoredAt:     c.Author.When,
			CommitterName:  c.Committer.Name,
			CommitterEmail: c.Committer.Email,
			CommittedAt:    c.Committer.When,
		}
		for _, p := range c.ParentHashes {
			out.Parents = append(out.Parents, p.String())
		}
		return nil
	})
	return out, err
}

// ChangedFiles lists the paths (sorted, both sides of renames) that differ
// between beforeSHA and afterSHA, for rules:changes. An empty or all-zero
// beforeSHA (new branch, web-triggered) compares afterSHA with its first
// parent, or with the empty tree for a root commit.
func (s *Store) ChangedFiles(ctx context.Context, repo, beforeSHA, afterSHA string) ([]string, error) {
	after, err := parseSHA(afterSHA)
	if err != nil {
		return nil, err
	}
	var before plumbing.Hash
	if !isZeroSHA(beforeSHA) {
		if before, err = parseSHA(beforeSHA); err != nil {
			return nil, err
		}
	}
	var out []string
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		out = out[:0]
		ac, err := getCommit(st, after)
		if err != nil {
			return err
		}
		to, err := ac.Tree()
		if err != nil {
			return err
		}
		from := &object.Tree{}
		base := before
		if base.IsZero() && len(ac.ParentHashes) > 0 {
			base = ac.ParentHashes[0]
		}
		if !base.IsZero() {
			bc, err := getCommit(st, base)
			if err != nil {
				return err
			}
			if from, err = bc.Tree(); err != nil {
				return err
			}
		}
		changes, err := object.DiffTreeWithOptions(ctx, from, to, nil)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(changes))
		for _, ch := range changes {
			for _, n := range []string{ch.From.Name, ch.To.Name} {
				if n != "" && !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// Exists reports whether any file at commit sha matches any of the globs,
// for rules:exists. Globs follow Ruby's File.fnmatch with FNM_PATHNAME |
// FNM_DOTMATCH | FNM_EXTGLOB, as GitLab uses: "*" stays within a directory,
// "**/" spans zero or more directories, "{a,b}" alternates. Plain paths are
// looked up directly; otherwise the tree is walked once, skipping subtrees
// no pattern can match.
func (s *Store) Exists(ctx context.Context, repo, sha string, globs []string) (bool, error) {
	h, err := parseSHA(sha)
	if err != nil {
		return false, err
	}
	var literals []string
	var pats []globPattern
	for _, g := range globs {
		if g == "" {
			continue
		}
		if !hasGlobMeta(g) {
			if p, err := cleanFilePath(unescapeGlob(g)); err == nil && !strings.HasPrefix(g, "/") {
				literals = append(literals, p)
			}
			continue
		}
		pats = append(pats, compileGlob(g)...)
	}
	if len(literals) == 0 && len(pats) == 0 {
		return false, validateRepoPath(repo)
	}
	found := false
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		found = false
		c, err := getCommit(st, h)
		if err != nil {
			return err
		}
		tree, err := object.GetTree(st, c.TreeHash)
		if err != nil {
			return err
		}
		for _, p := range literals {
			e, err := findEntry(st, tree, p)
			if err == nil && e.Mode != filemode.Dir {
				found = true
				return nil
			}
		}
		if len(pats) == 0 {
			return nil
		}
		w := treeWalker{ctx: ctx, st: st, pats: pats}
		found, err = w.walk(tree, nil)
		return err
	})
	return found, err
}

type treeWalker struct {
	ctx   context.Context
	st    *filesystem.Storage
	pats  []globPattern
	count int
}

func (w *treeWalker) walk(t *object.Tree, dir []string) (bool, error) {
	for _, e := range t.Entries {
		w.count++
		if w.count%1024 == 0 {
			if err := w.ctx.Err(); err != nil {
				return false, err
			}
		}
		segs := append(dir[:len(dir):len(dir)], e.Name)
		if e.Mode == filemode.Dir {
			if !w.anyCouldMatchUnder(segs) {
				continue
			}
			sub, err := object.GetTree(w.st, e.Hash)
			if err != nil {
				return false, fmt.Errorf("gitrepo: reading tree %s: %w", e.Hash, err)
			}
			if ok, err := w.walk(sub, segs); ok || err != nil {
				return ok, err
			}
			continue
		}
		for _, p := range w.pats {
			if p.match(segs) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (w *treeWalker) anyCouldMatchUnder(dir []string) bool {
	for _, p := range w.pats {
		if p.couldMatchUnder(dir) {
			return true
		}
	}
	return false
}

// IsAncestor reports whether commit ancestor is reachable from commit
// descendant by following parents (a commit is its own ancestor), as
// `git merge-base --is-ancestor` does. Both must be full object ids; an
// annotated tag's id is peeled to its commit. The walk stops when ctx ends.
func (s *Store) IsAncestor(ctx context.Context, repo, ancestor, descendant string) (bool, error) {
	a, err := parseSHA(ancestor)
	if err != nil {
		return false, err
	}
	d, err := parseSHA(descendant)
	if err != nil {
		return false, err
	}
	found := false
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		if a, err = peelToCommit(st, a); err != nil {
			return err
		}
		if d, err = peelToCommit(st, d); err != nil {
			return err
		}
		seen := map[plumbing.Hash]bool{d: true}
		queue := []plumbing.Hash{d}
		for n := 0; len(queue) > 0; n++ {
			h := queue[0]
			queue = queue[1:]
			if h == a {
				found = true
				return nil
			}
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			c, err := getCommit(st, h)
			if err != nil {
				return err
			}
			for _, p := range c.ParentHashes {
				if !seen[p] {
					seen[p] = true
					queue = append(queue, p)
				}
			}
		}
		return nil
	})
	return found, err
}
