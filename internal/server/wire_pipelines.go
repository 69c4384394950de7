package server

import (
	"context"
	"errors"
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
	key, err := secrets.LoadKey(os.Getenv("KILN_SECRETS_KEY"), s.cfg.DataDir)
	if err != nil {
		return err
	}
	if s.secrets, err = secrets.New(key); err != nil {
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
