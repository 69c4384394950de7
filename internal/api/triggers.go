package api

func (a *API) triggerRoutes() {}
