//go:build linux

package resolver

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/godbus/dbus/v5"
)

const (
	resolvedName = "org.freedesktop.resolve1"
	resolvedPath = dbus.ObjectPath("/org/freedesktop/resolve1")
	resolvedMgr  = "org.freedesktop.resolve1.Manager."
)

// Detect returns the Configurator for this system: systemd-resolved's
// per-link settings when it handles lookups, else resolv.conf.
func Detect(ctx context.Context, opts Options) Configurator {
	return detectLinux(ctx, opts, func(ctx context.Context) (ResolvedLink, bool) {
		conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
		if err != nil {
			return nil, false
		}
		defer conn.Close()
		var has bool
		err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, resolvedName).Store(&has)
		return dbusResolved{}, err == nil && has
	})
}

// dbusResolved calls systemd-resolved over the system bus, one connection
// per call: the root helper makes a handful of calls and exits.
type dbusResolved struct{}

func (dbusResolved) call(ctx context.Context, method string, args ...any) error {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	if err := conn.Object(resolvedName, resolvedPath).CallWithContext(ctx, resolvedMgr+method, 0, args...).Err; err != nil {
		return fmt.Errorf("call %s on %s: %w", method, resolvedName, err)
	}
	return nil
}

// dbusAddr is the (iay) of SetLinkDNS: address family and bytes.
type dbusAddr struct {
	Family  int32
	Address []byte
}

func (d dbusResolved) SetLinkDNS(ctx context.Context, ifindex int, servers []netip.Addr) error {
	var addrs []dbusAddr
	for _, a := range servers {
		if a.Is4() || a.Is4In6() {
			b := a.Unmap().As4()
			addrs = append(addrs, dbusAddr{Family: 2, Address: b[:]}) // AF_INET
		} else {
			b := a.As16()
			addrs = append(addrs, dbusAddr{Family: 10, Address: b[:]}) // AF_INET6
		}
	}
	return d.call(ctx, "SetLinkDNS", int32(ifindex), addrs)
}

// dbusDomain is the (sb) of SetLinkDomains.
type dbusDomain struct {
	Domain      string
	RoutingOnly bool
}

func (d dbusResolved) SetLinkDomains(ctx context.Context, ifindex int, domains []LinkDomain) error {
	out := make([]dbusDomain, 0, len(domains))
	for _, x := range domains {
		out = append(out, dbusDomain(x))
	}
	return d.call(ctx, "SetLinkDomains", int32(ifindex), out)
}

func (d dbusResolved) SetLinkDefaultRoute(ctx context.Context, ifindex int, enable bool) error {
	return d.call(ctx, "SetLinkDefaultRoute", int32(ifindex), enable)
}

func (d dbusResolved) SetLinkDNSSEC(ctx context.Context, ifindex int, mode string) error {
	return d.call(ctx, "SetLinkDNSSEC", int32(ifindex), mode)
}

func (d dbusResolved) RevertLink(ctx context.Context, ifindex int) error {
	return d.call(ctx, "RevertLink", int32(ifindex))
}
