package server

import "context"

// wireRunners registers this area's routes and background work.
func (s *Server) wireRunners(ctx context.Context) error { return nil }
