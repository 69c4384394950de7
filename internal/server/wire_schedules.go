package server

import "context"

// wireSchedules registers this area's routes and background work.
func (s *Server) wireSchedules(ctx context.Context) error { return nil }
