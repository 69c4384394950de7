package api

func (a *API) jobRoutes() {}
