package gitrepo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Listing refs while other processes write them.
//
// go-git's reference iterator is not safe against concurrent writers: it
// lists a directory with a stat of every entry, and when one entry vanishes
// between the two (git's "N.lock" renamed to "N") it takes the whole
// directory for gone and silently drops every ref in it; it also reads
// "N.lock" files as refs and fails on the empty ones. Kiln writes a loose
// ref per pipeline (refs/pipelines/N), from several goroutines and, with
// replicas, several processes, so listings must not depend on that luck.
//
// readRefs follows the rules of git's files backend instead:
//
//   - Loose refs first, then packed-refs. Writers that pack refs (git
//     pack-refs, gc) write packed-refs before they delete the loose files,
//     and deleters (DeleteRef, git update-ref -d) drop the packed entry
//     before the loose file, so a ref that exists for the whole listing is
//     seen in at least one of the two reads.
//   - Directory entries are read without a stat each (d_type); an entry
//     that is gone by the time it is opened was deleted or renamed and is
//     skipped alone. Names ending in ".lock" and names starting with "."
//     are never refs (git skips them too).
//   - Every writer publishes a loose ref by renaming a complete lock file
//     over it, so a read sees either the old or the new content, never a
//     partial one. A file that still reads empty or malformed after a few
//     quick retries is a broken ref, and is skipped as git does.
//   - Every file is replaced atomically, including packed-refs, so one
//     read of packed-refs is one consistent snapshot.

// brokenRefRetries bounds re-reads of a loose ref that looks malformed
// (a writer that does not use lock files may be halfway through).
const brokenRefRetries = 3

// readRefs returns the repository's refs under refs/ (loose refs win over
// packed ones) whose names start with one of prefixes (none: all), sorted
// by name. Symbolic refs come back as plumbing.SymbolicReference,
// unresolved. Directories no prefix can match are not read at all.
func readRefs(dir string, prefixes ...string) ([]*plumbing.Reference, error) {
	seen := make(map[string]*plumbing.Reference)
	f := refFilter(prefixes)
	if err := readLooseRefs(dir, "refs", f, seen); err != nil {
		return nil, err
	}
	if err := readPackedRefs(dir, f, seen); err != nil {
		return nil, err
	}
	out := make([]*plumbing.Reference, 0, len(seen))
	for _, r := range seen {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// storageRefs is readRefs for an opened go-git storage.
func storageRefs(st *filesystem.Storage, prefixes ...string) ([]*plumbing.Reference, error) {
	return readRefs(st.Filesystem().Root(), prefixes...)
}

// refFilter selects refs by name prefix.
type refFilter []string

func (f refFilter) ref(name string) bool {
	if len(f) == 0 {
		return true
	}
	for _, p := range f {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// dir reports whether refs below directory rel ("refs/x") may match.
func (f refFilter) dir(rel string) bool {
	if len(f) == 0 {
		return true
	}
	rel += "/"
	for _, p := range f {
		if strings.HasPrefix(rel, p) || strings.HasPrefix(p, rel) {
			return true
		}
	}
	return false
}

func readLooseRefs(dir, rel string, f refFilter, seen map[string]*plumbing.Reference) error {
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		// Gone (pruned once its last ref was deleted, so it held none that
		// lasted the listing) or replaced by a file: nothing to read here.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("gitrepo: listing %s: %w", rel, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") {
			continue
		}
		full := rel + "/" + name
		if e.IsDir() {
			if !f.dir(full) {
				continue
			}
			if err := readLooseRefs(dir, full, f, seen); err != nil {
				return err
			}
			continue
		}
		if !f.ref(full) {
			continue
		}
		ref, err := readLooseRef(dir, full)
		if err != nil {
			return err
		}
		if ref != nil {
			seen[full] = ref
		}
	}
	return nil
}

// readLooseRef reads one loose ref file; nil (and no error) when it is gone
// or broken.
func readLooseRef(dir, full string) (*plumbing.Reference, error) {
	path := filepath.Join(dir, filepath.FromSlash(full))
	for attempt := 0; ; attempt++ {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EISDIR):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("gitrepo: reading %s: %w", full, err)
		}
		if ref := parseLooseRef(full, data); ref != nil {
			return ref, nil
		}
		if attempt >= brokenRefRetries {
			return nil, nil
		}
		time.Sleep(time.Millisecond)
	}
}

func parseLooseRef(full string, data []byte) *plumbing.Reference {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	s := strings.TrimSpace(string(line))
	if target, ok := strings.CutPrefix(s, "ref:"); ok {
		target = strings.TrimSpace(target)
		if target == "" {
			return nil
		}
		return plumbing.NewSymbolicReference(plumbing.ReferenceName(full), plumbing.ReferenceName(target))
	}
	if len(s) != 40 || !isHex(s) {
		return nil
	}
	return plumbing.NewHashReference(plumbing.ReferenceName(full), plumbing.NewHash(strings.ToLower(s)))
}

// readPackedRefs adds packed-refs entries not shadowed by a loose ref.
func readPackedRefs(dir string, f refFilter, seen map[string]*plumbing.Reference) error {
	data, err := os.ReadFile(filepath.Join(dir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gitrepo: reading packed-refs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		sha, name, ok := strings.Cut(line, " ")
		if !ok || len(sha) != 40 || !isHex(sha) || !strings.HasPrefix(name, "refs/") {
			return fmt.Errorf("gitrepo: malformed packed-refs line %q", line)
		}
		if !f.ref(name) {
			continue
		}
		if _, loose := seen[name]; !loose {
			seen[name] = plumbing.NewHashReference(plumbing.ReferenceName(name), plumbing.NewHash(strings.ToLower(sha)))
		}
	}
	return sc.Err()
}
