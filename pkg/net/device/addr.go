package device

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// The session's own addresses on the device: the IPv4 one it always has
// (configurable, [DefaultAddr]), and on macOS an IPv6 unique local address
// when a route is IPv6.

// DefaultAddr is the session's address on the device unless configured:
// from the benchmarking range RFC 2544 keeps off real networks. Fake-IP
// proxies (Surge, Clash, sing-box) take 198.18.0.0/15 too, hence
// [CheckAddr] and the deviceAddr setting.
var DefaultAddr = netip.MustParsePrefix("198.18.0.1/32")

// ParseAddr reads a session address as a person writes it, an address or
// a single-host prefix (198.18.0.1, 100.127.255.254/32), and checks it
// ([ValidateAddr]).
func ParseAddr(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if a, err := netip.ParseAddr(s); err == nil {
		p = netip.PrefixFrom(a, a.BitLen())
	} else if p, err = netip.ParsePrefix(s); err != nil {
		return netip.Prefix{}, fmt.Errorf("device address %q: write an address like 100.127.255.254", s)
	}
	if err := ValidateAddr(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// ulaRange is fd00::/8, the locally assigned half of RFC 4193's fc00::/7.
var ulaRange = netip.MustParsePrefix("fd00::/8")

// NeedsAddr6 decides whether the device gets an IPv6 address besides addr:
// on darwin, when addr is IPv4 and any route is IPv6. XNU refuses a route
// to an interface without an address of the route's family (ENETUNREACH
// from the routing socket), so a dual-stack cluster's IPv6 Service range,
// or --also-proxy with an IPv6 CIDR, would fail connect. wireguard-go's
// users, tailscale and Telepresence all give the utun an inet6 address.
// Linux routes IPv6 to a device without one (the source comes from another
// interface), and its e2e laptops are IPv4 only: there it stays as it was.
func NeedsAddr6(goos string, addr netip.Prefix, routes []netip.Prefix) bool {
	if goos != "darwin" || addr.Addr().Is6() {
		return false
	}
	for _, r := range routes {
		if r.Addr().Is6() {
			return true
		}
	}
	return false
}

// ChooseULA picks the session's IPv6 address: ::1 in a random /48 of
// fd00::/8 (RFC 4193 section 3.2: a 40-bit random global ID), as a /128.
// A daemon chooses it once and keeps it for the session, across
// reconnects. Random, not derived from anything on the laptop: two
// sessions (two laptops behind one VPN) must not share one, and nothing
// about the laptop should be readable from it. One that falls inside avoid
// (the session's own routes, e.g. --also-proxy fd00::/8) is drawn again: a
// source address routed back into the device would loop.
func ChooseULA(random io.Reader, avoid []netip.Prefix) (netip.Prefix, error) {
	if random == nil {
		random = rand.Reader
	}
	for range 16 {
		var b [16]byte
		b[0] = 0xfd
		if _, err := io.ReadFull(random, b[1:6]); err != nil {
			return netip.Prefix{}, fmt.Errorf("choose an IPv6 address for the device: %w", err)
		}
		b[15] = 1
		a := netip.AddrFrom16(b)
		clear := true
		for _, p := range avoid {
			clear = clear && !p.Contains(a)
		}
		if clear {
			return netip.PrefixFrom(a, 128), nil
		}
	}
	return netip.Prefix{}, errors.New("choose an IPv6 address for the device: every random fd00::/48 drawn is inside the session's routes; route less of fd00::/8")
}

// ValidateAddr6 checks the device's second address: an IPv6 /128 in
// fd00::/8, which is all [ChooseULA] gives, so that root never adds an
// address the user could otherwise reach.
func ValidateAddr6(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 128 || !ulaRange.Contains(p.Addr()) {
		return fmt.Errorf("IPv6 address %s: must be a /128 in %s", p, ulaRange)
	}
	return nil
}

// IfAddr is an address of one of the host's interfaces.
type IfAddr struct {
	Prefix netip.Prefix
	Device string
}

// AddrConflictError says the session's address is taken: another interface
// has it, or a route other than the default sends it elsewhere.
type AddrConflictError struct {
	Addr netip.Addr
	// Device holds it or is where the route goes.
	Device string
	// Route is the route that covers Addr; zero when an interface has it.
	Route netip.Prefix
}

func (e *AddrConflictError) Error() string {
	what := fmt.Sprintf("interface %s has that address", e.Device)
	if e.Route.IsValid() {
		what = fmt.Sprintf("the local route %s on %s covers it", e.Route, e.Device)
		if fakeIPRange.Overlaps(e.Route) {
			what += " (the fake-IP range of a proxy such as Surge, Clash or sing-box)"
		}
	}
	return fmt.Sprintf("device address %s is in use: %s; choose a free address for the session with --device-addr (or deviceAddr in the config file), e.g. --device-addr %s",
		e.Addr, what, suggestAddr(e.Route))
}

// fakeIPRange is where fake-IP proxies put their synthetic addresses.
var fakeIPRange = netip.MustParsePrefix("198.18.0.0/15")

// suggestAddr names an address outside the route that conflicted: from
// 100.64.0.0/10 (RFC 6598 shared address space), which no fake-IP proxy
// takes by default; a CGNAT or Tailscale network may, and the check then
// says so again.
func suggestAddr(taken netip.Prefix) string {
	a := netip.MustParseAddr("100.127.255.254")
	if taken.IsValid() && taken.Contains(a) {
		a = netip.MustParseAddr("192.0.2.254") // TEST-NET-1, RFC 5737
	}
	return a.String()
}

// CheckAddr refuses the session's address when an interface other than
// ownDevice already has it, or a route other than a default or one on
// ownDevice covers it: our packets' source would be the other network's,
// and its answers would go there. routes come from [ListRoutes], addrs from
// [ListAddrs].
func CheckAddr(addr netip.Prefix, routes []Route, addrs []IfAddr, ownDevice string) error {
	a := addr.Addr()
	for _, ia := range addrs {
		if ia.Device != ownDevice && ia.Prefix.Addr() == a {
			return &AddrConflictError{Addr: a, Device: ia.Device}
		}
	}
	for _, r := range routes {
		if !r.Prefix.IsValid() || r.Prefix.Bits() == 0 || r.Device == ownDevice {
			continue
		}
		if r.Prefix.Contains(a) {
			return &AddrConflictError{Addr: a, Device: r.Device, Route: r.Prefix}
		}
	}
	return nil
}

// ListAddrs returns the addresses of the host's interfaces.
func ListAddrs() ([]IfAddr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []IfAddr
	for _, i := range ifaces {
		as, err := i.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", i.Name, err)
		}
		for _, a := range as {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			bits, _ := n.Mask.Size()
			out = append(out, IfAddr{Prefix: netip.PrefixFrom(ip.Unmap(), bits), Device: i.Name})
		}
	}
	return out, nil
}
