package gitrepo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Fetches (git-upload-pack) are served with fewer processes than going
// through git-http-backend, which costs a CGI process plus upload-pack for
// every one of the three requests of a protocol v2 fetch:
//
//   - GET info/refs with "Git-Protocol: version=2" answers with upload-pack's
//     capability advertisement. It holds no refs, so the output of
//     "git upload-pack --advertise-refs" is cached, keyed by the
//     repository's config file and the git binary; the first request for a
//     key runs git (v0 advertisements list refs and still go to git).
//   - POST git-upload-pack with "command=ls-refs" in the common form (sha1
//     repository, only agent/object-format/server-option/session-id
//     capabilities, only the peel/symrefs/unborn/ref-prefix arguments, no
//     hideRefs or lsrefs settings in the repository config) is answered
//     from the refs read with go-git, byte for byte what upload-pack sends.
//     Anything else, and any ref whose object is missing or that is an
//     unusual symbolic ref, falls back to git.
//   - Every other POST git-upload-pack runs "git upload-pack
//     --stateless-rpc" directly, with the same environment and limits.
//
// Pushes (receive-pack) still go through git-http-backend.

const (
	gitNoCache       = "no-cache, max-age=0, must-revalidate"
	gitExpires       = "Fri, 01 Jan 1980 00:00:00 GMT"
	maxLsRefsRequest = 1 << 20
	// git's ls-refs ignores ref-prefix arguments beyond this many.
	tooManyPrefixes = 65536
)

func protocolV2(gp string) bool {
	for f := range strings.SplitSeq(gp, ":") {
		if f == "version=2" {
			return true
		}
	}
	return false
}

func setNoCache(h http.Header, contentType string) {
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", gitNoCache)
	h.Set("Expires", gitExpires)
	h.Set("Pragma", "no-cache")
}

// gitStamp identifies the git binary, so an upgrade invalidates cached
// advertisements.
func (s *Store) gitStamp() string {
	p, err := exec.LookPath(s.cfg.gitBin)
	if err != nil {
		p = s.cfg.gitBin
	}
	fi, err := os.Stat(p)
	if err != nil {
		return p
	}
	return fmt.Sprintf("%s\x00%d\x00%d", p, fi.Size(), fi.ModTime().UnixNano())
}

// serveV2Caps answers GET info/refs?service=git-upload-pack for protocol
// v2. It reports false, having written nothing, when git's answer is not a
// v2 advertisement (the caller then uses git-http-backend). Advertisements
// are kept as small files below the Store's state directory, named by a
// hash of what they depend on: the git binary, the Git-Protocol value and
// the repository's config file.
func (s *Store) serveV2Caps(w http.ResponseWriter, r *http.Request, dir, gp string) bool {
	conf, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil || len(conf) > 1<<20 {
		return false
	}
	sum := sha256.Sum256([]byte(s.gitStamp() + "\x00" + gp + "\x00" + string(conf)))
	cached := filepath.Join(s.root, stateDir, "upload-pack-v2", hex.EncodeToString(sum[:16]))
	adv, err := os.ReadFile(cached)
	if err != nil || !validV2Caps(adv) {
		var out, stderr bytes.Buffer
		cmd := exec.CommandContext(r.Context(), s.cfg.gitBin, "upload-pack", "--advertise-refs", "--stateless-rpc", dir)
		cmd.Dir = dir
		cmd.Env = append(s.gitEnv("http.uploadpack", "true"), "GIT_PROTOCOL="+gp)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			s.log.Warn("gitrepo: upload-pack capability advertisement", "dir", dir, "err", err, "stderr", strings.TrimSpace(stderr.String()))
			return false
		}
		adv = out.Bytes()
		if !validV2Caps(adv) {
			return false
		}
		if err := os.MkdirAll(filepath.Dir(cached), 0o700); err == nil {
			if err := writeFileAtomic(cached, adv, 0o600); err != nil {
				s.log.Warn("gitrepo: caching upload-pack capabilities", "err", err)
			}
		}
	}
	setNoCache(w.Header(), "application/x-git-upload-pack-advertisement")
	w.Header().Set("Content-Length", strconv.Itoa(len(adv)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(adv)
	}
	return true
}

// validV2Caps accepts a protocol v2 capability advertisement: no refs, so
// safe to reuse for any repository with the same configuration.
func validV2Caps(b []byte) bool {
	return len(b) < 64<<10 && bytes.HasPrefix(b, []byte("000eversion 2\n")) && bytes.HasSuffix(b, []byte("0000")) &&
		!bytes.Contains(b, []byte(" refs/"))
}

// serveUploadPack handles POST git-upload-pack: ls-refs in-process when
// possible, otherwise git upload-pack --stateless-rpc.
func (s *Store) serveUploadPack(w http.ResponseWriter, r *http.Request, repo, dir string, body io.Reader) {
	gp := r.Header.Get("Git-Protocol")
	if gp != "" && !validGitProtocol(gp) {
		gp = ""
	}
	if protocolV2(gp) {
		br := bufio.NewReaderSize(body, 4096)
		var consumed bytes.Buffer
		req, ok := readLsRefs(io.TeeReader(br, &consumed))
		if ok {
			if out, ok := s.lsRefs(r.Context(), repo, dir, req); ok {
				setNoCache(w.Header(), "application/x-git-upload-pack-result")
				w.Header().Set("Content-Length", strconv.Itoa(len(out)))
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(out)
				return
			}
		}
		body = io.MultiReader(&consumed, br)
	}
	s.runUploadPack(w, r, repo, dir, gp, body)
}

// runUploadPack streams one stateless upload-pack exchange.
func (s *Store) runUploadPack(w http.ResponseWriter, r *http.Request, repo, dir, gp string, body io.Reader) {
	cmd := exec.CommandContext(r.Context(), s.cfg.gitBin, "upload-pack", "--stateless-rpc", dir)
	cmd.Dir = dir
	cmd.Env = append(s.gitEnv("http.uploadpack", "true"), "REMOTE_USER="+remoteUser(r.Context()))
	if gp != "" {
		cmd.Env = append(cmd.Env, "GIT_PROTOCOL="+gp)
	}
	cmd.Stdin = body
	cmd.Stderr = &logWriter{log: s.log, repo: repo, what: "upload-pack"}
	cmd.WaitDelay = 5 * time.Second
	fw := &firstWrite{w: w}
	cmd.Stdout = fw
	err := cmd.Run()
	if err != nil && !fw.wrote {
		if r.Context().Err() == nil {
			s.log.Warn("gitrepo: upload-pack", "repo", repo, "err", err)
		}
		httpError(w, http.StatusInternalServerError, "upload-pack failed")
		return
	}
	if err != nil && r.Context().Err() == nil && !errors.Is(err, errTooLarge) {
		s.log.Warn("gitrepo: upload-pack", "repo", repo, "err", err)
	}
}

// firstWrite sends the response headers with the first output and flushes
// every write, so packs stream to the client as upload-pack produces them.
type firstWrite struct {
	w     http.ResponseWriter
	wrote bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.wrote {
		f.wrote = true
		setNoCache(f.w.Header(), "application/x-git-upload-pack-result")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(p)
	if err == nil {
		_ = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

type lsRefsRequest struct {
	peel, symrefs, unborn bool
	prefixes              []string
}

// readPkt reads one pkt-line; special packets (flush 0000, delim 0001,
// response-end 0002) come back as a nil payload with their length as kind.
func readPkt(r io.Reader) (payload []byte, kind int, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	var n int
	for _, c := range hdr {
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'a' && c <= 'f':
			v = int(c-'a') + 10
		default:
			return nil, 0, errors.New("bad pkt-line length")
		}
		n = n<<4 | v
	}
	switch {
	case n < 3:
		return nil, n, nil
	case n == 3 || n > 65520:
		return nil, 0, errors.New("bad pkt-line length")
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, 0, err
	}
	return bytes.TrimSuffix(buf, []byte("\n")), -1, nil
}

// readLsRefs parses a v2 ls-refs request in the forms this package answers
// itself. ok is false for anything else, with the input read so far kept by
// the caller for git.
func readLsRefs(r io.Reader) (req lsRefsRequest, ok bool) {
	r = io.LimitReader(r, maxLsRefsRequest)
	p, kind, err := readPkt(r)
	if err != nil || kind != -1 || string(p) != "command=ls-refs" {
		return req, false
	}
	// Capabilities, up to the delimiter.
	for {
		p, kind, err = readPkt(r)
		if err != nil {
			return req, false
		}
		if kind == 1 {
			break
		}
		if kind != -1 {
			return req, false // flush without arguments: let git answer
		}
		k, v, _ := strings.Cut(string(p), "=")
		switch k {
		case "agent", "server-option", "session-id":
		case "object-format":
			if v != "sha1" {
				return req, false
			}
		default:
			return req, false
		}
	}
	for {
		p, kind, err = readPkt(r)
		if err != nil {
			return req, false
		}
		if kind == 0 {
			break
		}
		if kind != -1 {
			return req, false
		}
		switch a := string(p); {
		case a == "peel":
			req.peel = true
		case a == "symrefs":
			req.symrefs = true
		case a == "unborn":
			req.unborn = true
		case strings.HasPrefix(a, "ref-prefix "):
			if len(req.prefixes) >= tooManyPrefixes {
				return req, false // git then lists every ref; rare, let it
			}
			req.prefixes = append(req.prefixes, strings.TrimPrefix(a, "ref-prefix "))
		default:
			return req, false
		}
	}
	return req, true
}

func (q *lsRefsRequest) match(name string) bool {
	if len(q.prefixes) == 0 {
		return true
	}
	for _, p := range q.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// errFallback abandons in-process ls-refs for git.
var errFallback = errors.New("ls-refs needs git")

// lsRefs answers an ls-refs request as git 2.x upload-pack does: HEAD first
// (or "unborn HEAD"), then matching refs in byte order, each with
// symref-target and peeled values when asked, then a flush packet. ok is
// false when git should answer instead.
func (s *Store) lsRefs(ctx context.Context, repo, dir string, req lsRefsRequest) ([]byte, bool) {
	conf, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		return nil, false
	}
	lc := strings.ToLower(string(conf))
	// Settings that change what ls-refs shows, and non-sha1 repositories.
	for _, k := range []string{"hiderefs", "lsrefs", "objectformat", "refstorage", "namespace"} {
		if strings.Contains(lc, k) {
			return nil, false
		}
	}
	if os.Getenv("GIT_NAMESPACE") != "" {
		return nil, false
	}
	var out bytes.Buffer
	err = s.withRepo(ctx, repo, func(st *filesystem.Storage) error {
		out.Reset()
		line := func(l string) error {
			if len(l)+5 > 65520 {
				return errFallback
			}
			fmt.Fprintf(&out, "%04x%s\n", len(l)+5, l)
			return nil
		}
		object := func(h plumbing.Hash) (plumbing.ObjectType, plumbing.Hash, error) {
			obj, err := st.EncodedObject(plumbing.AnyObject, h)
			if err != nil {
				return 0, plumbing.ZeroHash, errFallback // missing (or unreadable): git decides
			}
			if obj.Type() != plumbing.TagObject || !req.peel {
				return obj.Type(), plumbing.ZeroHash, nil
			}
			// Peel annotated tags (which may chain) to the first non-tag.
			cur := obj
			for range 32 {
				tag, err := object.DecodeTag(st, cur)
				if err != nil {
					return 0, plumbing.ZeroHash, errFallback
				}
				next, err := st.EncodedObject(plumbing.AnyObject, tag.Target)
				if err != nil {
					return 0, plumbing.ZeroHash, errFallback
				}
				if next.Type() != plumbing.TagObject {
					return plumbing.TagObject, tag.Target, nil
				}
				cur = next
			}
			return 0, plumbing.ZeroHash, errFallback
		}
		refLine := func(name string, h plumbing.Hash, target string) error {
			l := h.String() + " " + name
			if req.symrefs && target != "" {
				l += " symref-target:" + target
			}
			_, peeled, err := object(h)
			if err != nil {
				return err
			}
			if req.peel && !peeled.IsZero() {
				l += " peeled:" + peeled.String()
			}
			return line(l)
		}

		if req.match("HEAD") {
			head, err := st.Reference(plumbing.HEAD)
			if err != nil {
				return errFallback
			}
			switch head.Type() {
			case plumbing.HashReference:
				if err := refLine("HEAD", head.Hash(), ""); err != nil {
					return err
				}
			case plumbing.SymbolicReference:
				target := head.Target()
				rr, err := st.Reference(target)
				switch {
				case errors.Is(err, plumbing.ErrReferenceNotFound):
					if req.unborn && req.symrefs {
						if err := line("unborn HEAD symref-target:" + target.String()); err != nil {
							return err
						}
					}
				case err != nil || rr.Type() != plumbing.HashReference:
					return errFallback // chained or unreadable: git decides
				default:
					if err := refLine("HEAD", rr.Hash(), target.String()); err != nil {
						return err
					}
				}
			}
		}

		all, err := storageRefs(st, req.prefixes...)
		if err != nil {
			return err
		}
		var refs []*plumbing.Reference
		for _, r := range all {
			name := r.Name().String()
			if !req.match(name) {
				continue
			}
			if r.Type() != plumbing.HashReference || checkRefName(name) != nil {
				return errFallback
			}
			refs = append(refs, r)
		}
		for _, r := range refs { // sorted by name, each once
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := refLine(r.Name().String(), r.Hash(), ""); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errFallback) && ctx.Err() == nil {
			s.log.Warn("gitrepo: in-process ls-refs failed; using git", "repo", repo, "err", err)
		}
		return nil, false
	}
	out.WriteString("0000")
	return out.Bytes(), true
}
