package runnerapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

// runnerJSON is what register, verify and reset answer: token_expires_at is
// always null (Kiln's runner tokens do not expire), never "".
func runnerJSON(id int64, token string) map[string]any {
	return map[string]any{"id": id, "token": token, "token_expires_at": nil}
}

// registerRequest is the legacy registration body; tag_list is a
// comma-separated string from gitlab-runner but an array from some clients.
type registerRequest struct {
	Token          string          `json:"token"`
	Description    string          `json:"description"`
	TagList        json.RawMessage `json:"tag_list"`
	RunUntagged    *bool           `json:"run_untagged"`
	Locked         bool            `json:"locked"`
	AccessLevel    string          `json:"access_level"`
	MaximumTimeout int64           `json:"maximum_timeout"`
	Paused         bool            `json:"paused"`
	Active         *bool           `json:"active"`
	Info           versionInfo     `json:"info"`
}

// ParseTagList accepts "a, b" or ["a","b"] and returns clean, unique tags.
func ParseTagList(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var list []string
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		list = strings.Split(s, ",")
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, false
	}
	return CleanTags(list), true
}

// CleanTags trims tags, drops empty and duplicate ones; commas cannot be in a tag.
func CleanTags(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range in {
		for _, p := range strings.Split(t, ",") {
			p = strings.TrimSpace(p)
			if p == "" || seen[p] || len(p) > 255 {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// register is the legacy POST /api/v4/runners with the instance registration token.
func (s *Service) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if !readJSON(w, r, &req) {
		return
	}
	ctx := r.Context()
	want, ok, err := s.cfg.Store.Setting(ctx, RegistrationTokenSetting)
	if err != nil {
		internalError(w)
		return
	}
	if !ok || req.Token == "" || len(req.Token) > 256 || !auth.Equal(auth.Hash(req.Token), want) {
		forbidden(w)
		return
	}
	tags, ok := ParseTagList(req.TagList)
	if !ok {
		badRequest(w, "tag_list is invalid")
		return
	}
	access := req.AccessLevel
	if access == "" {
		access = "not_protected"
	}
	if access != "not_protected" && access != "ref_protected" {
		badRequest(w, "access_level does not have a valid value")
		return
	}
	if req.MaximumTimeout < 0 || (req.MaximumTimeout > 0 && req.MaximumTimeout < 600) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string][]string{"maximum_timeout": {"needs to be at least 10 minutes"}}})
		return
	}
	run := &store.Runner{Description: trunc(req.Description, 1024), RunnerType: "instance_type", Tags: tags, RunUntagged: req.RunUntagged == nil || *req.RunUntagged,
		Locked: req.Locked, Paused: req.Paused || (req.Active != nil && !*req.Active), AccessLevel: access, MaximumTimeout: req.MaximumTimeout}
	token, err := s.CreateRunner(ctx, run)
	if err != nil {
		s.log.Error("registering runner failed", "err", err)
		internalError(w)
		return
	}
	writeJSON(w, http.StatusCreated, runnerJSON(run.ID, token))
}

// CreateRunner stores a new runner with a fresh glrt- token and returns the token.
func (s *Service) CreateRunner(ctx context.Context, run *store.Runner) (string, error) {
	token := auth.NewToken(auth.RunnerPrefix)
	run.TokenHash = auth.Hash(token)
	if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.CreateRunner(ctx, run) }); err != nil {
		return "", err
	}
	s.RunnersChanged()
	return token, nil
}

type tokenRequest struct {
	Token    string `json:"token"`
	SystemID string `json:"system_id"`
}

// tokenRunner reads a runner-token request and resolves the runner; it has
// answered (400/403/500) when it returns nil.
func (s *Service) tokenRunner(w http.ResponseWriter, r *http.Request) (*cachedRunner, string) {
	var req tokenRequest
	if !readJSON(w, r, &req) {
		return nil, ""
	}
	token := runnerToken(r, req.Token)
	cr, err := s.runnerByToken(r.Context(), token)
	if err != nil {
		internalError(w)
		return nil, ""
	}
	if cr == nil {
		forbidden(w)
		return nil, ""
	}
	return cr, token
}

// verify is POST /api/v4/runners/verify.
func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	cr, token := s.tokenRunner(w, r)
	if cr == nil {
		return
	}
	writeJSON(w, http.StatusOK, runnerJSON(cr.runner().ID, token))
}

// unregister is DELETE /api/v4/runners: the runner deletes itself.
func (s *Service) unregister(w http.ResponseWriter, r *http.Request) {
	cr, _ := s.tokenRunner(w, r)
	if cr == nil {
		return
	}
	ctx := r.Context()
	id := cr.runner().ID
	if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.DeleteRunner(ctx, id) }); err != nil {
		internalError(w)
		return
	}
	s.RunnersChanged()
	w.WriteHeader(http.StatusNoContent)
}

// unregisterManager is DELETE /api/v4/runners/managers: Kiln keeps no
// per-machine records, so a valid token is all it checks.
func (s *Service) unregisterManager(w http.ResponseWriter, r *http.Request) {
	cr, _ := s.tokenRunner(w, r)
	if cr == nil {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetToken is POST /api/v4/runners/reset_authentication_token.
func (s *Service) resetToken(w http.ResponseWriter, r *http.Request) {
	cr, token := s.tokenRunner(w, r)
	if cr == nil {
		return
	}
	ctx := r.Context()
	id := cr.runner().ID
	token, err := s.ResetRunnerToken(ctx, id)
	if err != nil {
		internalError(w)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": token, "token_expires_at": nil})
}

// ResetRunnerToken gives a runner a new token; the old one stops working at once.
func (s *Service) ResetRunnerToken(ctx context.Context, id int64) (string, error) {
	token := auth.NewToken(auth.RunnerPrefix)
	err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.SetRunnerToken(ctx, id, auth.Hash(token)) })
	if err != nil {
		return "", err
	}
	s.RunnersChanged()
	return token, nil
}

// ResetRegistrationToken creates a new instance registration token (the
// legacy registration flow) and returns it; only its hash is kept.
func (s *Service) ResetRegistrationToken(ctx context.Context) (string, error) {
	token := auth.RegistrationPrefix + strings.TrimPrefix(auth.NewToken(""), "")[:20]
	err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.PutSetting(ctx, RegistrationTokenSetting, auth.Hash(token)) })
	return token, err
}
