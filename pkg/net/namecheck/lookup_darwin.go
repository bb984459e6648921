//go:build darwin

package namecheck

import (
	"context"
	"net"
	"net/netip"
)

// OSLookup asks getaddrinfo in libSystem, which goes to mDNSResponder and
// so follows /etc/resolver files as every Mac program does. Without cgo,
// Go on darwin still has its "cgo" resolver (net/cgo_unix.go, built for
// !netgo && ((cgo && unix) || darwin), makes cgoAvailable true), which
// calls libSystem's getaddrinfo through syscall trampolines
// (net/cgo_unix_syscall.go, built for !netgo && darwin); conf.go's
// goosPrefersCgo picks it on darwin unless PreferGo is set (read in Go
// 1.26's source; not run: no Mac here).
func OSLookup(ctx context.Context, name string) ([]netip.Addr, error) {
	r := &net.Resolver{PreferGo: false}
	return r.LookupNetIP(ctx, "ip", name)
}
