package api

func (a *API) pipelineRoutes() {}
