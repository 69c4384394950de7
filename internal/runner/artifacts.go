package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/runner/client"
)

func (j *jobRun) lookupVar(k string) (string, bool) {
	v, ok := j.vars[k]
	return v, ok
}

// patterns expands and normalises artifact or cache paths, logging (not
// failing on) those that leave the project directory.
func (j *jobRun) patterns(paths []string) []string {
	var out []string
	for _, p := range paths {
		n, err := normalizePattern(j.projectDir, expandVars(p, j.lookupVar))
		if err != nil {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: %v: path refused\x1b[0;m\n", err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// collect resolves paths/exclude/untracked to the files to archive.
func (j *jobRun) collect(ctx context.Context, paths, exclude []string, untracked bool) ([]string, error) {
	var extra []string
	if untracked {
		extra = untrackedFiles(ctx, j.sess, j.projectDir, j.env)
	}
	return collectFiles(j.projectDir, j.patterns(paths), j.patterns(exclude), extra)
}

func (j *jobRun) hasDependencies() bool {
	for _, d := range j.job.Dependencies {
		if d.ArtifactsFile.Filename != "" {
			return true
		}
	}
	return false
}

// retry runs fn up to attempts times while it fails with a retryable error.
func retry(ctx context.Context, attempts int, fn func() error) error {
	bo := backoff{min: time.Second, max: 10 * time.Second}
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil || !client.Retryable(err) || ctx.Err() != nil {
			return err
		}
		if !sleepCtx(ctx, bo.next()) {
			return err
		}
	}
	return err
}

func (j *jobRun) downloadArtifacts(ctx context.Context) error {
	for _, d := range j.job.Dependencies {
		if d.ArtifactsFile.Filename == "" {
			continue
		}
		fmt.Fprintf(j.trace, "Downloading artifacts for %s (%d)...\n", d.Name, d.ID)
		f, err := os.CreateTemp(j.tmpDir, "dependency-*.zip")
		if err != nil {
			return err
		}
		name := f.Name()
		err = retry(ctx, 3, func() error {
			if err := f.Truncate(0); err != nil {
				return err
			}
			if _, err := f.Seek(0, 0); err != nil {
				return err
			}
			err := j.c.DownloadArtifacts(ctx, d.ID, d.Token, f)
			if err != nil && client.Retryable(err) && ctx.Err() == nil {
				fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: Downloading artifacts for %s (%d): %v\x1b[0;m\n", d.Name, d.ID, err)
			}
			return err
		})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = extractZip(name, j.projectDir)
		}
		os.Remove(name)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			fmt.Fprintf(j.trace, "\x1b[31;1mERROR: Downloading artifacts for %s (%d) failed: %v\x1b[0;m\n", d.Name, d.ID, err)
			return &scriptExit{code: 1}
		}
		fmt.Fprintf(j.trace, "Downloading artifacts from coordinator... ok\n")
	}
	return nil
}

func (j *jobRun) hasArtifacts(success bool) bool {
	for _, a := range j.job.Artifacts {
		if (len(a.Paths) > 0 || a.Untracked) && whenMatches(a.When, success) {
			return true
		}
	}
	return false
}

// uploadArtifacts archives and uploads every artifacts entry whose "when"
// matches the job result. Missing files only warn, as in GitLab.
func (j *jobRun) uploadArtifacts(ctx context.Context, success bool) error {
	var errs []error
	for i, a := range j.job.Artifacts {
		if !(len(a.Paths) > 0 || a.Untracked) || !whenMatches(a.When, success) {
			continue
		}
		files, err := j.collect(ctx, a.Paths, a.Exclude, a.Untracked)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		typ := a.ArtifactType
		if typ == "" {
			typ = "archive"
		}
		if len(files) == 0 {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: %s: no matching files\x1b[0;m\n", strings.Join(a.Paths, ", "))
			fmt.Fprintf(j.trace, "\x1b[31;1mERROR: No files to upload\x1b[0;m\n")
			continue
		}
		fmt.Fprintf(j.trace, "Uploading artifacts...\n%s: found %d matching artifact files and directories\n", strings.Join(a.Paths, ", "), len(files))
		f, err := os.CreateTemp(j.tmpDir, fmt.Sprintf("artifacts-%d-*", i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		name := expandVars(a.Name, j.lookupVar)
		format := a.ArtifactFormat
		var filename string
		switch format {
		case "gzip":
			err = writeGzip(f, j.projectDir, files)
			filename = name
			if filename == "" {
				filename = filepath.Base(files[0])
			}
			filename += ".gz"
		case "raw":
			filename = filepath.Base(files[0])
			var b []byte
			// Through an os.Root: the file may be a symlink the job planted.
			if b, err = readInRoot(j.projectDir, files[0]); err == nil {
				_, err = f.Write(b)
			}
		default:
			err = writeZip(f, j.projectDir, files)
			if name == "" {
				name = "artifacts"
			}
			filename = name + ".zip"
		}
		if err == nil {
			err = retry(ctx, 3, func() error {
				return j.c.UploadArtifacts(ctx, j.job.ID, j.job.Token, f, client.UploadOptions{
					Filename: filename, ExpireIn: a.ExpireIn, ArtifactFormat: format, ArtifactType: a.ArtifactType,
				})
			})
		}
		f.Close()
		os.Remove(f.Name())
		if err != nil {
			fmt.Fprintf(j.trace, "\x1b[31;1mERROR: Uploading artifacts as %q to coordinator... failed: %v\x1b[0;m\n", typ, err)
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(j.trace, "Uploading artifacts as %q to coordinator... 201 Created\n", typ)
	}
	return errors.Join(errs...)
}

func (j *jobRun) hasCache(restore bool) bool {
	for _, c := range j.job.Cache {
		if len(c.Paths) == 0 && !c.Untracked {
			continue
		}
		switch c.Policy {
		case client.CachePolicyPull:
			if restore {
				return true
			}
		case client.CachePolicyPush:
			if !restore {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// cacheName maps a cache key to its archive's name below the cache root,
// "<project path>/<escaped key>/cache.zip": keys may contain "/", so each
// key is escaped into a single path segment. The same name is the file
// below CacheDir (local caches) and the object key below "cache/" (a
// shared Cache store), so runners sharing a store share caches by key;
// the server's -protected/-non_protected suffix (package access decides
// it) keeps the two kinds of refs apart in both.
func (j *jobRun) cacheName(key string) (string, bool) {
	key = expandVars(key, j.lookupVar)
	if key == "" {
		key = "default"
	}
	esc := url.PathEscape(key)
	if esc == "." || esc == ".." {
		return "", false
	}
	return projectPath(j.job) + "/" + esc + "/cache.zip", true
}

// cacheFile is the local archive of a cache key.
func (j *jobRun) cacheFile(key string) (string, bool) {
	name, ok := j.cacheName(key)
	if !ok {
		return "", false
	}
	return filepath.Join(j.r.cfg.CacheDir, filepath.FromSlash(name)), true
}

// cacheObject is the shared store's key of a cache key's archive.
func (j *jobRun) cacheObject(key string) (string, bool) {
	name, ok := j.cacheName(key)
	if !ok || blob.ValidKey("cache/"+name) != nil {
		return "", false
	}
	return "cache/" + name, true
}

// cacheTimeout bounds one cache download or upload to the shared store
// (a stalled object store costs a warning, not a hung job).
func (j *jobRun) cacheTimeout() time.Duration {
	if d := j.r.cfg.CacheTimeout; d > 0 {
		return d
	}
	return 10 * time.Minute
}

// openCache finds a cache key's archive: the local file, or (with a shared
// Cache store) the object downloaded to a temporary file that cleanup
// removes. found is false when there is no such cache.
func (j *jobRun) openCache(ctx context.Context, key string) (file string, cleanup func(), found bool, err error) {
	if j.r.cfg.Cache == nil {
		file, ok := j.cacheFile(key)
		if !ok {
			return "", nil, false, nil
		}
		if _, err := os.Stat(file); err != nil {
			return "", nil, false, nil
		}
		return file, func() {}, true, nil
	}
	obj, ok := j.cacheObject(key)
	if !ok {
		return "", nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, j.cacheTimeout())
	defer cancel()
	rc, _, err := j.r.cfg.Cache.Get(ctx, obj)
	if errors.Is(err, blob.ErrNotFound) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, err
	}
	defer rc.Close()
	if err := os.MkdirAll(j.r.cfg.CacheDir, 0o755); err != nil {
		return "", nil, false, err
	}
	f, err := os.CreateTemp(j.r.cfg.CacheDir, "download-*.zip")
	if err != nil {
		return "", nil, false, err
	}
	cleanup = func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, false, err
	}
	return f.Name(), cleanup, true, nil
}

func (j *jobRun) restoreCache(ctx context.Context) {
	where := "locally"
	if j.r.cfg.Cache != nil {
		where = "in the shared cache"
	}
	for _, c := range j.job.Cache {
		if c.Policy == client.CachePolicyPush || (len(c.Paths) == 0 && !c.Untracked) {
			continue
		}
		keys := append([]string{c.Key}, c.FallbackKeys...)
		restored := false
		for _, k := range keys {
			file, cleanup, found, err := j.openCache(ctx, k)
			if err != nil {
				fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: Failed to download cache %s: %v\x1b[0;m\n", k, err)
				continue
			}
			if !found {
				continue
			}
			fmt.Fprintf(j.trace, "Checking cache for %s...\n", k)
			err = extractZip(file, j.projectDir)
			cleanup()
			if err != nil {
				fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: Failed to extract cache: %v\x1b[0;m\n", err)
				continue
			}
			fmt.Fprintf(j.trace, "Successfully extracted cache\n")
			restored = true
			break
		}
		if !restored {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: Cache %s not found %s\x1b[0;m\n", c.Key, where)
		}
	}
}

func (j *jobRun) saveCache(ctx context.Context, success bool) {
	for _, c := range j.job.Cache {
		if c.Policy == client.CachePolicyPull || (len(c.Paths) == 0 && !c.Untracked) || !whenMatches(c.When, success) {
			continue
		}
		file, ok := j.cacheFile(c.Key)
		obj, objOK := j.cacheObject(c.Key)
		if !ok || (j.r.cfg.Cache != nil && !objOK) {
			continue
		}
		files, err := j.collect(ctx, c.Paths, nil, c.Untracked)
		if err == nil && len(files) == 0 {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: %s: no matching files\x1b[0;m\n", strings.Join(c.Paths, ", "))
			continue
		}
		if err == nil {
			err = os.MkdirAll(filepath.Dir(file), 0o755)
		}
		if err == nil {
			// Written aside and renamed (or uploaded), so concurrent jobs
			// never read a half-written cache.
			var f *os.File
			if f, err = os.CreateTemp(filepath.Dir(file), "cache-*.tmp"); err == nil {
				err = writeZip(f, j.projectDir, files)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err == nil && j.r.cfg.Cache != nil {
					err = j.uploadCache(ctx, obj, f.Name())
					os.Remove(f.Name())
				} else if err == nil {
					err = os.Rename(f.Name(), file)
				}
				if err != nil {
					os.Remove(f.Name())
				}
			}
		}
		if err != nil {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: Failed to create cache: %v\x1b[0;m\n", err)
			continue
		}
		fmt.Fprintf(j.trace, "Creating cache %s...\n%d files and directories\n", c.Key, len(files))
		if j.r.cfg.Cache != nil {
			fmt.Fprintf(j.trace, "Uploaded cache to the shared cache\n")
		}
		fmt.Fprintf(j.trace, "Created cache\n")
	}
}

// uploadCache streams a finished archive to the shared store.
func (j *jobRun) uploadCache(ctx context.Context, obj, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, j.cacheTimeout())
	defer cancel()
	return j.r.cfg.Cache.Put(ctx, obj, f, fi.Size())
}

// readInRoot reads rel below root, following symlinks only while they stay
// inside root.
func readInRoot(root, rel string) ([]byte, error) {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	return rt.ReadFile(filepath.FromSlash(rel))
}
