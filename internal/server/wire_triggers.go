package server

import "context"

// wireTriggers registers this area's routes and background work.
func (s *Server) wireTriggers(ctx context.Context) error { return nil }
