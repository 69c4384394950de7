package server

import "context"

// wirePipelinesAPI registers this area's routes and background work.
func (s *Server) wirePipelinesAPI(ctx context.Context) error { return nil }
