package api

func (a *API) variableRoutes() {}
