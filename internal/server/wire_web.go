package server

import "context"

// wireWeb registers this area's routes and background work.
func (s *Server) wireWeb(ctx context.Context) error { return nil }
