package api

func (a *API) scheduleRoutes() {}
