package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
)

// Repos is the part of the git repository layer the API uses.
type Repos interface {
	Create(ctx context.Context, repo string) error
	Delete(ctx context.Context, repo string) error
	SetDefaultBranch(ctx context.Context, repo, branch string) error
	ResolveRef(ctx context.Context, repo, name string) (gitrepo.Ref, error)
	ReadFile(ctx context.Context, repo, sha, path string) ([]byte, string, error)
	Commit(ctx context.Context, repo, sha string) (gitrepo.Commit, error)
	Branches(ctx context.Context, repo string) ([]gitrepo.Ref, error)
	Tags(ctx context.Context, repo string) ([]gitrepo.Ref, error)
}

func (a *API) commitJSON(p *store.Project, c gitrepo.Commit) map[string]any {
	parents := c.Parents
	if parents == nil {
		parents = []string{}
	}
	return map[string]any{
		"id": c.SHA, "short_id": short(c.SHA), "title": c.Title, "message": c.Message,
		"author_name": c.AuthorName, "author_email": c.AuthorEmail, "authored_date": isoTime(c.AuthoredAt),
		"committer_name": c.CommitterName, "committer_email": c.CommitterEmail, "committed_date": isoTime(c.CommittedAt),
		"created_at": isoTime(c.CommittedAt), "parent_ids": parents,
		"web_url": a.ExternalURL + "/" + p.FullPath + "/-/commit/" + c.SHA,
	}
}

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

func (a *API) branchJSON(ctx context.Context, p *store.Project, ref gitrepo.Ref) map[string]any {
	m := map[string]any{
		"name": ref.Name, "merged": false, "protected": false, "default": ref.Name == p.DefaultBranch,
		"developers_can_push": true, "developers_can_merge": true, "can_push": true,
		"web_url": a.ExternalURL + "/" + p.FullPath + "/-/tree/" + ref.Name,
	}
	if c, err := a.Repos.Commit(ctx, p.FullPath, ref.SHA); err == nil {
		m["commit"] = a.commitJSON(p, c)
	} else {
		m["commit"] = map[string]any{"id": ref.SHA}
	}
	return m
}

func (a *API) listBranches(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return err
	}
	refs, err := a.Repos.Branches(c.ctx, p.FullPath)
	if err != nil {
		return err
	}
	return a.writeRefs(w, r, c, p, refs, a.branchJSON)
}

func (a *API) writeRefs(w http.ResponseWriter, r *http.Request, c *reqCtx, p *store.Project, refs []gitrepo.Ref, render func(context.Context, *store.Project, gitrepo.Ref) map[string]any) error {
	page, err := paging(r)
	if err != nil {
		return err
	}
	search := c.params.String("search")
	var filtered []gitrepo.Ref
	for _, ref := range refs {
		if search == "" || strings.Contains(ref.Name, search) {
			filtered = append(filtered, ref)
		}
	}
	out := []map[string]any{}
	for i := page.Offset(); i < len(filtered) && i < page.Offset()+page.Limit(); i++ {
		out = append(out, render(c.ctx, p, filtered[i]))
	}
	setPagination(w, r, page, len(filtered))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getBranch(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return err
	}
	refs, err := a.Repos.Branches(c.ctx, p.FullPath)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if ref.Name == r.PathValue("branch") {
			writeJSON(w, http.StatusOK, a.branchJSON(c.ctx, p, ref))
			return nil
		}
	}
	return errNotFound("Branch")
}

func (a *API) tagJSON(ctx context.Context, p *store.Project, ref gitrepo.Ref) map[string]any {
	m := map[string]any{"name": ref.Name, "target": ref.SHA, "message": "", "protected": false, "release": nil}
	if c, err := a.Repos.Commit(ctx, p.FullPath, ref.SHA); err == nil {
		m["commit"] = a.commitJSON(p, c)
	}
	return m
}

func (a *API) listTags(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return err
	}
	refs, err := a.Repos.Tags(c.ctx, p.FullPath)
	if err != nil {
		return err
	}
	return a.writeRefs(w, r, c, p, refs, a.tagJSON)
}

// resolveCommitish turns a ref parameter (branch, tag or SHA) into a commit SHA.
func (a *API) resolveCommitish(ctx context.Context, p *store.Project, ref string) (string, error) {
	if ref == "" {
		ref = p.DefaultBranch
	}
	res, err := a.Repos.ResolveRef(ctx, p.FullPath, ref)
	if err == nil {
		return res.SHA, nil
	}
	if errors.Is(err, gitrepo.ErrRefIsSHA) {
		if c, cerr := a.Repos.Commit(ctx, p.FullPath, strings.ToLower(ref)); cerr == nil {
			return c.SHA, nil
		}
	}
	if errors.Is(err, gitrepo.ErrRefIsHEAD) && p.DefaultBranch != "" {
		return a.resolveCommitish(ctx, p, p.DefaultBranch)
	}
	return "", errNotFound("Commit")
}

func (a *API) fileAt(r *http.Request, c *reqCtx) (*store.Project, []byte, string, string, error) {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return nil, nil, "", "", err
	}
	path := r.PathValue("path")
	if path == "" || strings.Contains(path, "\x00") || len(path) > 4096 {
		return nil, nil, "", "", errParam("file_path is invalid")
	}
	ref, err := c.params.Required("ref")
	if err != nil {
		return nil, nil, "", "", err
	}
	sha, err := a.resolveCommitish(c.ctx, p, ref)
	if err != nil {
		return nil, nil, "", "", err
	}
	data, blob, err := a.Repos.ReadFile(c.ctx, p.FullPath, sha, path)
	if err != nil {
		return nil, nil, "", "", errNotFound("File")
	}
	return p, data, blob, sha, nil
}

func (a *API) getFile(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	_, data, blob, sha, err := a.fileAt(r, c)
	if err != nil {
		return err
	}
	path := r.PathValue("path")
	name := path[strings.LastIndex(path, "/")+1:]
	writeJSON(w, http.StatusOK, map[string]any{
		"file_name": name, "file_path": path, "size": len(data), "encoding": "base64",
		"content": base64.StdEncoding.EncodeToString(data), "ref": c.params.String("ref"),
		"blob_id": blob, "commit_id": sha, "last_commit_id": sha,
	})
	return nil
}

func (a *API) getRawFile(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	_, data, _, _, err := a.fileAt(r, c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(data)
	return nil
}

func (a *API) getCommit(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return err
	}
	sha, err := a.resolveCommitish(c.ctx, p, r.PathValue("sha"))
	if err != nil {
		return err
	}
	cm, err := a.Repos.Commit(c.ctx, p.FullPath, sha)
	if err != nil {
		return errNotFound("Commit")
	}
	writeJSON(w, http.StatusOK, a.commitJSON(p, cm))
	return nil
}
