package api

func (a *API) runnerRoutes() {}
