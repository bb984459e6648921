//go:build !linux && !darwin

package namecheck

import (
	"context"
	"net"
	"net/netip"
)

// OSLookup asks the system's resolver (GetAddrInfoW on Windows).
func OSLookup(ctx context.Context, name string) ([]netip.Addr, error) {
	r := &net.Resolver{PreferGo: false}
	return r.LookupNetIP(ctx, "ip", name)
}
