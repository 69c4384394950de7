package server

import (
	"context"
	"time"

	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/lifecycle"
	"github.com/kilnci/kiln/internal/pipewatch"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/trigger"
)

// deliveryRetention is how long the trigger deliveries log keeps entries.
const deliveryRetention = 30 * 24 * time.Hour

// webhookDeliveryRetention is how long webhook trigger deliveries (which
// keep request bodies) are kept.
const webhookDeliveryRetention = 14 * 24 * time.Hour

// wireTriggers registers the trigger endpoints, runs `trigger:` bridge jobs
// and prunes the deliveries log and expired Idempotency-Keys (hourly,
// stopped by Close).
func (s *Server) wireTriggers(ctx context.Context) error {
	hub := pipewatch.New(s.store, api.EventPoll)
	s.onShutdown = append(s.onShutdown, hub.Close)
	s.closers = append(s.closers, hub.Close)
	// On PostgreSQL the limits are counted in the database, so that all
	// replicas share one budget; SQLite is one process: memory will do.
	var shared trigger.Shared
	if s.store.Dialect == store.Postgres {
		shared = s.store
	}
	s.api.RegisterTriggers(api.TriggerOptions{
		Shared:              shared,
		Watch:               hub,
		EventStreamMax:      s.cfg.EventStreamMax,
		PipelinesPerMinute:  s.cfg.TriggerRateLimit,
		FailedAuthBurst:     30,
		FailedAuthPerMinute: 30,
		RefusalBurst:        60,
		RefusalPerMinute:    60,
		Limits:              trigger.DefaultLimits,
		Observe:             s.metrics.TriggerResult,
	})

	s.api.RegisterWebhookTriggers(api.WebhookOptions{Shared: shared, PipelinesPerMinute: s.cfg.TriggerRateLimit})

	b := &trigger.Bridges{Store: s.store, Engine: s.engine, Log: s.log}
	// Engine hooks run after commit on the store's writer goroutine, which
	// must not wait for another write: the work goes to its own goroutine.
	// Hooks set by other areas keep running.
	prevBridge, prevFinished := s.engine.BridgePending, s.engine.PipelineFinished
	s.engine.BridgePending = func(ctx context.Context, jobID int64) {
		if prevBridge != nil {
			prevBridge(ctx, jobID)
		}
		s.bg.Go(func() { b.Pending(ctx, jobID) })
	}
	s.engine.PipelineFinished = func(ctx context.Context, pipelineID int64) {
		if prevFinished != nil {
			prevFinished(ctx, pipelineID)
		}
		s.bg.Go(func() { b.Finished(ctx, pipelineID) })
	}

	err := s.loops.Add(lifecycle.Loop{Name: "trigger-deliveries-prune", Every: time.Hour, Shared: true, Run: func(ctx context.Context) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.PruneDeliveries(ctx, time.Now().Add(-deliveryRetention))
			return err
		})
	}})
	if err != nil {
		return err
	}
	// Webhook deliveries keep request bodies: a shorter retention.
	err = s.loops.Add(lifecycle.Loop{Name: "webhook-deliveries-prune", Every: time.Hour, Shared: true, Run: func(ctx context.Context) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.PruneWebhookDeliveries(ctx, time.Now().Add(-webhookDeliveryRetention))
			return err
		})
	}})
	if err != nil {
		return err
	}
	// Rate counters that carry no state any more (full buckets, expired
	// failure counts).
	err = s.loops.Add(lifecycle.Loop{Name: "rate-counters-prune", Every: 10 * time.Minute, Shared: true, Run: func(ctx context.Context) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.PruneRateCounters(ctx, time.Now())
			return err
		})
	}})
	if err != nil {
		return err
	}
	// Idempotency keys past their 24 hours replay nothing any more.
	return s.loops.Add(lifecycle.Loop{Name: "idempotency-keys-prune", Every: time.Hour, Shared: true, Run: func(ctx context.Context) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			_, err := tx.PruneIdempotencyKeys(ctx, time.Now().Add(-api.IdempotencyTTL))
			return err
		})
	}})
}
