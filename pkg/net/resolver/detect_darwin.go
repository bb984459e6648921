//go:build darwin

package resolver

import "context"

// Detect returns the Configurator for this system: /etc/resolver files.
func Detect(ctx context.Context, opts Options) Configurator {
	return NewResolverDir(opts)
}
