package api

func (a *API) lintRoutes() {}
