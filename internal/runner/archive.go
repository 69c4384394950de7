package runner

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// matchGlob matches a slash-separated relative path against a pattern in
// which "**" as a whole segment matches any number of segments and other
// segments use path.Match syntax.
func matchGlob(pattern, name string) bool {
	if pattern == "." {
		return true
	}
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// normalizePattern makes a user-supplied artifact/cache path relative to
// root. Paths leaving root are refused: a job must not be able to archive
// (and hand to others) files outside its own project directory.
func normalizePattern(root, p string) (string, error) {
	orig := p
	if p == "" {
		return "", errors.New("empty path")
	}
	if filepath.IsAbs(p) {
		rel, err := filepath.Rel(root, filepath.Clean(p))
		if err != nil {
			return "", fmt.Errorf("%s: not inside the project directory", orig)
		}
		p = rel
	}
	p = path.Clean(filepath.ToSlash(p))
	if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return "", fmt.Errorf("%s: not inside the project directory", orig)
	}
	return p, nil
}

// collectFiles returns the relative paths under root matched by any of
// patterns (a matched directory brings its whole subtree) and not by any
// exclude, plus explicitly listed extra paths. Symlinks are not followed.
func collectFiles(root string, patterns, excludes, extra []string) ([]string, error) {
	matchAny := func(pats []string, rel string) bool {
		for p := rel; ; {
			for _, pat := range pats {
				if matchGlob(pat, p) {
					return true
				}
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				return false
			}
			p = p[:i]
		}
	}
	set := map[string]bool{}
	if len(patterns) > 0 {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == root {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if matchAny(excludes, rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if matchAny(patterns, rel) {
				set[rel] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, rel := range extra {
		rel = path.Clean(rel)
		if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || matchAny(excludes, rel) {
			continue
		}
		set[strings.TrimSuffix(rel, "/")] = true
	}
	out := make([]string, 0, len(set))
	for rel := range set {
		out = append(out, rel)
	}
	sort.Strings(out)
	return out, nil
}

// untrackedFiles lists files git does not track, ignoring .gitignore as
// GitLab's "untracked: true" does. git runs through the job's executor:
// the repository's configuration is the job's and may run commands.
func untrackedFiles(ctx context.Context, s ExecSession, dir string, env []string) []string {
	out, err := runOutput(ctx, s, Cmd{Args: []string{"git", "ls-files", "--others", "-z"}, Dir: dir, Env: env})
	if err != nil {
		return nil
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	return files
}

// writeZip archives the given paths (relative to root). Symlinks are stored
// as links, not followed.
func writeZip(w io.Writer, root string, rels []string) error {
	// Files are opened through an os.Root: a symlinked directory in a path
	// (one the job planted) must not lead the agent outside root.
	rt, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer rt.Close()
	zw := zip.NewWriter(w)
	for _, rel := range rels {
		full := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(full)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		hdr, err := zip.FileInfoHeader(fi)
		if err != nil {
			return err
		}
		hdr.Name = rel
		switch {
		case fi.IsDir():
			hdr.Name += "/"
			hdr.Method = zip.Store
			if _, err := zw.CreateHeader(hdr); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(full)
			if err != nil {
				return err
			}
			hdr.Method = zip.Store
			fw, err := zw.CreateHeader(hdr)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(fw, target); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			hdr.Method = zip.Deflate
			fw, err := zw.CreateHeader(hdr)
			if err != nil {
				return err
			}
			f, err := rt.Open(filepath.FromSlash(rel))
			if err != nil {
				return err
			}
			_, err = io.Copy(fw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return zw.Close()
}

// writeGzip writes each regular file as one gzip member, the layout GitLab
// expects for artifact_format=gzip (e.g. junit reports).
func writeGzip(w io.Writer, root string, rels []string) error {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer rt.Close()
	for _, rel := range rels {
		full := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		zw := gzip.NewWriter(w)
		zw.Name = rel
		zw.ModTime = fi.ModTime()
		f, err := rt.Open(filepath.FromSlash(rel))
		if err != nil {
			return err
		}
		_, err = io.Copy(zw, f)
		f.Close()
		if err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// within reports whether p is dest or below it.
func within(dest, p string) bool {
	rel, err := filepath.Rel(dest, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// extractZip unpacks an archive into dest, refusing entries (and symlinks)
// that would land outside dest: archives come from other jobs and must not
// be able to write elsewhere on the runner host.
func extractZip(zipPath, dest string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	realDest, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		name := path.Clean(strings.TrimPrefix(filepath.ToSlash(f.Name), "./"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return fmt.Errorf("archive entry %q escapes the destination", f.Name)
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		mode := f.Mode()
		if mode.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		}
		parent := filepath.Dir(target)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		// A symlinked directory already in dest (from the repo, or an
		// earlier entry) could otherwise redirect the write elsewhere.
		realParent, err := filepath.EvalSymlinks(parent)
		if err != nil {
			return err
		}
		if !within(realDest, realParent) {
			return fmt.Errorf("archive entry %q escapes the destination", f.Name)
		}
		_ = os.Remove(target)
		if mode&fs.ModeSymlink != 0 {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err != nil {
				return err
			}
			link := string(b)
			resolved := link
			if !filepath.IsAbs(link) {
				resolved = filepath.Join(realParent, link)
			}
			if !within(realDest, filepath.Clean(resolved)) {
				return fmt.Errorf("archive symlink %q points outside the destination", f.Name)
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			continue
		}
		if !mode.IsRegular() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm()|0o600)
		if err != nil {
			rc.Close()
			return err
		}
		_, err = io.Copy(out, rc)
		rc.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		_ = os.Chtimes(target, f.Modified, f.Modified)
	}
	return nil
}
