package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

// wirePipelines builds the pipeline engine and creates pipelines on push.
func (s *Server) wirePipelines(ctx context.Context) error {
	key, err := secrets.LoadKeyFrom(os.Getenv("KILN_SECRETS_KEY"), s.cfg.SecretsKeyFile, s.cfg.DataDir)
	if err != nil {
		return err
	}
	if s.secrets, err = secrets.New(key); err != nil {
		return err
	}
	if err := s.verifySecretsKey(ctx); err != nil {
		return err
	}
	s.engine = &pipeline.Engine{Store: s.store, Access: s.access, Repos: s.repos, Secrets: s.secrets, ExternalURL: s.cfg.ExternalURL, Log: s.log}
	s.pushHooks = append(s.pushHooks, s.pipelinesOnPush)
	// Follow-ups lost in a crash (delayed jobs that came due while the
	// server was down, bridges whose downstream was never created, depend
	// bridges whose downstream finished): at start and every minute, one
	// replica at a time.
	return s.loops.Add(lifecycle.Loop{Name: "recovery", Every: recoveryEvery, Shared: true, Run: s.engine.Recover})
}

// secretsCheckSetting is the settings row holding the key check: a known
// text sealed with the key of the first server that started on this
// database.
const secretsCheckSetting = "secrets_key_check"

// verifySecretsKey refuses a secrets key that differs from the one the
// database's values are sealed with (a replica started with its own data
// dir and a freshly generated secrets.key, say): it would seal values the
// other replicas cannot read and fail every job that needs an old one.
// The first server to start records the check; replicas starting at once
// agree on the first one written.
func (s *Server) verifySecretsKey(ctx context.Context) error {
	for range 2 {
		stored, _, err := s.store.Setting(ctx, secretsCheckSetting)
		if err != nil {
			return err
		}
		var samples []string
		if stored == "" {
			if samples, err = s.store.SealedSamples(ctx); err != nil {
				return err
			}
		}
		check, err := s.secrets.Verify(stored, samples)
		if errors.Is(err, secrets.ErrWrongKey) {
			return fmt.Errorf("%w: every replica on one database must use the same secrets key: "+
				"copy the first server's <data-dir>/secrets.key to --secrets-key-file (KILN_SECRETS_KEY_FILE) or set KILN_SECRETS_KEY on every replica", err)
		}
		if err != nil || check == "" {
			return err
		}
		if err := s.store.Write(ctx, func(tx *store.Tx) error { return tx.AddSetting(ctx, secretsCheckSetting, check) }); err != nil {
			return err
		}
		// Read back: another replica may have written its check first.
	}
	return nil
}

// recoveryEvery is the period of the recovery loop.
const recoveryEvery = time.Minute

// pipelinesOnPush creates a pipeline (source push) for each created or
// updated branch and tag; deleted refs create nothing.
func (s *Server) pipelinesOnPush(ctx context.Context, p *store.Project, u *store.User, updates []gitrepo.RefUpdate) {
	for _, up := range updates {
		if up.After == gitrepo.ZeroSHA {
			continue
		}
		name, ok := strings.CutPrefix(up.Ref, "refs/heads/")
		if !ok {
			if name, ok = strings.CutPrefix(up.Ref, "refs/tags/"); !ok {
				continue
			}
		}
		pl, err := s.engine.Create(ctx, pipeline.Request{Project: p, Ref: up.Ref, Source: "push", User: u, SHA: up.After, BeforeSHA: up.Before,
			PushOptions: pushOptions(ctx)})
		var ce *pipeline.CreateError
		switch {
		case errors.Is(err, pipeline.ErrSkipped):
			s.log.Info("push pipeline skipped by [ci skip] or -o ci.skip", "project", p.FullPath, "ref", name)
		case errors.As(err, &ce):
			s.log.Info("push created no pipeline", "project", p.FullPath, "ref", name, "reason", ce.Error())
		case err != nil:
			s.log.Error("push pipeline failed", "project", p.FullPath, "ref", name, "err", err)
		default:
			s.log.Info("pipeline created", "project", p.FullPath, "ref", name, "pipeline", pl.ID, "source", "push", "status", pl.Status)
		}
	}
}
