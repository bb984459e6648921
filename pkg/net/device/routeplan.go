package device

import (
	"fmt"
	"net"
	"net/netip"
)

// Routing-socket constants of darwin's <net/route.h> and <sys/socket.h>.
// They are declared here, not taken from golang.org/x/sys/unix, so that the
// route plan is built and tested on Linux too; device_darwin_test.go checks
// every one against unix.
const (
	darwinRTMAdd    = 0x1
	darwinRTMDelete = 0x2

	darwinRTFUp        = 0x1
	darwinRTFGateway   = 0x2
	darwinRTFHost      = 0x4
	darwinRTFLLInfo    = 0x400
	darwinRTFStatic    = 0x800
	darwinRTFWasCloned = 0x20000
	darwinRTFIfscope   = 0x1000000

	darwinAFInet  = 2
	darwinAFInet6 = 30
)

// routeOp is one message to darwin's routing socket, independent of
// golang.org/x/net/route (which only builds on the BSDs): device_darwin.go
// turns it into a route.RouteMessage.
type routeOp struct {
	// Type is darwinRTMAdd or darwinRTMDelete.
	Type  int
	Flags int
	// Seq numbers the messages of one plan from 1, so that the kernel's
	// replies (which echo it) can be matched in a log.
	Seq int
	// Dst is the destination network; Mask its netmask as an address of the
	// same family, invalid for a host route (RTF_HOST, no RTA_NETMASK).
	Dst  netip.Addr
	Mask netip.Addr
	// IfIndex and IfName are the utun: the gateway is the interface's
	// link-layer address, as `route add -net P -interface utunN` sends it.
	IfIndex int
	IfName  string
}

// planRoutes returns the routing-socket messages that add (typ darwinRTMAdd)
// or delete (darwinRTMDelete) one route per prefix through the interface.
// The routes are interface routes: RTF_UP|RTF_STATIC and no RTF_GATEWAY,
// because a utun has no next hop; full-length prefixes are host routes.
func planRoutes(typ, ifIndex int, ifName string, routes []netip.Prefix) ([]routeOp, error) {
	if typ != darwinRTMAdd && typ != darwinRTMDelete {
		return nil, fmt.Errorf("plan routes: message type %d is neither RTM_ADD nor RTM_DELETE", typ)
	}
	if ifIndex <= 0 || ifName == "" {
		return nil, fmt.Errorf("plan routes: interface %q has no index (%d)", ifName, ifIndex)
	}
	ops := make([]routeOp, 0, len(routes))
	for i, p := range routes {
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
			return nil, fmt.Errorf("plan routes: %s is not a canonical prefix", p)
		}
		op := routeOp{
			Type:    typ,
			Flags:   darwinRTFUp | darwinRTFStatic,
			Seq:     i + 1,
			Dst:     p.Addr(),
			IfIndex: ifIndex,
			IfName:  ifName,
		}
		if p.IsSingleIP() {
			op.Flags |= darwinRTFHost
		} else {
			op.Mask = maskAddr(p)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// maskAddr is p's netmask written as an address (255.255.240.0 for a /20).
func maskAddr(p netip.Prefix) netip.Addr {
	m, _ := netip.AddrFromSlice(net.CIDRMask(p.Bits(), p.Addr().BitLen()))
	return m
}

// maskBits is the prefix length of a netmask, or false if it is not a
// contiguous run of ones.
func maskBits(m netip.Addr) (int, bool) {
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return 0, false
	}
	return ones, true
}

// routeFromRIB turns one entry of darwin's routing table (a route.RouteMessage
// from a NET_RT_DUMP) into a [Route] for [CheckConflicts], or false for
// entries that are not a route of their own:
//   - not RTF_UP;
//   - ARP/neighbour entries (RTF_LLINFO) and host routes cloned from a
//     network route (RTF_WASCLONED): the network route is listed too;
//   - interface-scoped routes (RTF_IFSCOPE), which only apply to sockets
//     bound to that interface (each service's scoped default route);
//   - a destination that is not an IP address (AF_LINK entries).
//
// mask is the RTA_NETMASK address, invalid when the message has none: then
// the entry is a host route if RTF_HOST is set, and is skipped otherwise.
// A v4 netmask of a v6 route or the reverse, or a non-contiguous one, is
// skipped too. The kernel may send a netmask shorter than the address
// (trailing zero bytes dropped); the caller pads it to the family's length.
func routeFromRIB(dst, mask netip.Addr, flags int, dev string) (Route, bool) {
	if flags&darwinRTFUp == 0 || flags&(darwinRTFLLInfo|darwinRTFWasCloned|darwinRTFIfscope) != 0 {
		return Route{}, false
	}
	if !dst.IsValid() || dev == "" {
		return Route{}, false
	}
	dst = dst.WithZone("") // fe80::%en0: the zone is the device, known already
	bits := dst.BitLen()
	switch {
	case flags&darwinRTFHost != 0:
	case !mask.IsValid():
		return Route{}, false
	case mask.BitLen() != dst.BitLen():
		return Route{}, false
	default:
		n, ok := maskBits(mask)
		if !ok {
			return Route{}, false
		}
		bits = n
	}
	p, err := dst.Prefix(bits)
	if err != nil {
		return Route{}, false
	}
	return Route{Prefix: p, Device: dev}, true
}
