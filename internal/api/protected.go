package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

// Protected branches and tags, minimal: a name (exact or a wildcard like
// release/*) is protected or not. Pipelines on protected refs see protected
// variables and only maintainers may run or act on them. The default branch
// is always treated as protected, whether or not it is listed, as GitLab
// protects it on creation.
func (a *API) protectedRoutes() {
	for _, kind := range []string{"branch", "tag"} {
		base := "/api/v4/projects/{id}/protected_" + kind + "es"
		if kind == "tag" {
			base = "/api/v4/projects/{id}/protected_tags"
		}
		a.handle("GET "+base, a.listProtected(kind))
		a.handle("POST "+base, a.createProtected(kind))
		a.handle("GET "+base+"/{name}", a.getProtected(kind))
		a.handle("DELETE "+base+"/{name}", a.deleteProtected(kind))
	}
}

// maintainersLevel is GitLab's access-level list entry for "Maintainers",
// the only level Kiln's minimal protection knows.
func maintainersLevel() []map[string]any {
	return []map[string]any{{"id": 0, "access_level": access.Maintainer, "access_level_description": "Maintainers",
		"user_id": nil, "group_id": nil}}
}

func protectedJSON(pr *store.ProtectedRef) map[string]any {
	m := map[string]any{"id": pr.ID, "name": pr.Name}
	if pr.Kind == "branch" {
		m["push_access_levels"] = maintainersLevel()
		m["merge_access_levels"] = maintainersLevel()
		m["unprotect_access_levels"] = []any{}
		m["allow_force_push"] = false
		m["code_owner_approval_required"] = false
	} else {
		m["create_access_levels"] = maintainersLevel()
	}
	return m
}

func kindTitle(kind string) string {
	if kind == "branch" {
		return "Protected branch"
	}
	return "Protected tag"
}

func (a *API) listProtected(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
		p, _, err := a.project(r, c, access.Reporter)
		if err != nil {
			return err
		}
		page, err := paging(r)
		if err != nil {
			return err
		}
		refs, err := a.Store.ProtectedRefs(c.ctx, p.ID, kind)
		if err != nil {
			return err
		}
		search := c.params.String("search")
		var filtered []*store.ProtectedRef
		for _, pr := range refs {
			if search == "" || strings.Contains(pr.Name, search) {
				filtered = append(filtered, pr)
			}
		}
		out := []map[string]any{}
		for i := page.Offset(); i < len(filtered) && i < page.Offset()+page.Limit(); i++ {
			out = append(out, protectedJSON(filtered[i]))
		}
		setPagination(w, r, page, len(filtered))
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func (a *API) findProtected(c *reqCtx, p *store.Project, kind, name string) (*store.ProtectedRef, error) {
	refs, err := a.Store.ProtectedRefs(c.ctx, p.ID, kind)
	if err != nil {
		return nil, err
	}
	for _, pr := range refs {
		if pr.Name == name {
			return pr, nil
		}
	}
	return nil, errNotFound(kindTitle(kind))
}

func (a *API) getProtected(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
		p, _, err := a.project(r, c, access.Reporter)
		if err != nil {
			return err
		}
		pr, err := a.findProtected(c, p, kind, r.PathValue("name"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, protectedJSON(pr))
		return nil
	}
}

// validProtectedName accepts ref names and wildcards (the * of release/*
// is not valid in a ref name, so validRefName cannot be used as is).
func validProtectedName(s string) bool {
	return validRefName(strings.ReplaceAll(s, "*", "x"))
}

func (a *API) createProtected(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
		if err := c.requireUser(); err != nil {
			return err
		}
		p, _, err := a.project(r, c, access.Maintainer)
		if err != nil {
			return err
		}
		name, err := c.params.Required("name")
		if err != nil {
			return err
		}
		if !validProtectedName(name) {
			return errValidation("name", "is invalid")
		}
		if _, err := a.findProtected(c, p, kind, name); err == nil {
			return errMessage(http.StatusConflict, kindTitle(kind)+" '"+name+"' already exists")
		}
		pr := &store.ProtectedRef{ProjectID: p.ID, Kind: kind, Name: name}
		err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateProtectedRef(c.ctx, pr) })
		if errors.Is(err, store.ErrConflict) {
			return errMessage(http.StatusConflict, kindTitle(kind)+" '"+name+"' already exists")
		} else if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, protectedJSON(pr))
		return nil
	}
}

func (a *API) deleteProtected(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
		if err := c.requireUser(); err != nil {
			return err
		}
		p, _, err := a.project(r, c, access.Maintainer)
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteProtectedRef(c.ctx, p.ID, kind, name) })
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound(kindTitle(kind))
		} else if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
