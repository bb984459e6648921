//go:build !linux && !darwin && !windows

package resolver

import "context"

// Detect returns the Configurator for this system: resolv.conf.
func Detect(ctx context.Context, opts Options) Configurator {
	return NewResolvConf(opts)
}
