package server

import "context"

type pushOptionsKey struct{}

// withPushOptions carries a push's git push options (`git push -o ...`) to
// the push hooks, whose signature predates them.
func withPushOptions(ctx context.Context, opts []string) context.Context {
	if len(opts) == 0 {
		return ctx
	}
	return context.WithValue(ctx, pushOptionsKey{}, opts)
}

// pushOptions returns the push options of the push a PushHook is handling.
func pushOptions(ctx context.Context) []string {
	opts, _ := ctx.Value(pushOptionsKey{}).([]string)
	return opts
}
