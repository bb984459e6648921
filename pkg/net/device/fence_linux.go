package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fenceProtocol marks the routes Fence adds (rtm_protocol), so that a later
// process (the helper's "down", status) finds them; iproute2 shows it as
// "proto 126". It is not one of the kernel's or a routing daemon's.
const fenceProtocol netlink.RouteProtocol = 126

// fenceMetric is the worst metric, so the fence's route loses to any other
// route for the same address.
const fenceMetric = 1<<31 - 1

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// Fence adds, for the nameserver addr inside s's routes, a route through
// device s.Name and the fence under it (see fence.go). The device must
// exist (Create).
func Fence(s Spec, addr netip.Addr) error {
	if !addr.IsValid() {
		return errors.New("fence: no nameserver address")
	}
	addr = addr.Unmap().WithZone("")
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fence %s: netlink: %w", addr, err)
	}
	defer h.Close()
	link, err := h.LinkByName(s.Name)
	if err != nil {
		return fmt.Errorf("fence %s: look up device %s: %w", addr, s.Name, err)
	}
	dst := ipNet(hostPrefix(addr))
	via := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK, Protocol: fenceProtocol}
	if addr.Is4() == s.Addr.Addr().Is4() {
		via.Src = s.Addr.Addr().AsSlice()
	}
	if err := h.RouteAdd(via); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("fence %s: route it through %s: %w", addr, s.Name, err)
	}
	fence := &netlink.Route{Dst: dst, Type: unix.RTN_UNREACHABLE, Priority: fenceMetric, Protocol: fenceProtocol, Table: unix.RT_TABLE_MAIN}
	if err := h.RouteReplace(fence); err != nil {
		return fmt.Errorf("fence %s: add the unreachable route: %w", addr, err)
	}
	slog.Info("nameserver fenced", "addr", addr, "device", s.Name)
	return nil
}

// Fences returns the addresses fenced in the calling thread's network
// namespace. It needs no privilege.
func Fences() ([]netip.Addr, error) {
	routes, err := fenceRoutes()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && r.Type == unix.RTN_UNREACHABLE {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// Unfence removes every route Fence added, whatever the session.
func Unfence() error {
	routes, err := fenceRoutes()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range routes {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove the nameserver fence %s: %w", r.Dst, err))
			continue
		}
		slog.Info("nameserver fence removed", "dst", r.Dst.String(), "type", r.Type)
	}
	return errors.Join(errs...)
}

func fenceRoutes() ([]netlink.Route, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: fenceProtocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("list the nameserver fences: %w", err)
	}
	return routes, nil
}
