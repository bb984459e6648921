package device

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// Limits the root helper enforces on what it is asked to do.
const (
	MinMTU = 576
	MaxMTU = 65535
	// MinMTUv6 is the IPv6 minimum link MTU; Linux disables IPv6 on a device
	// with a smaller MTU, so a spec with any IPv6 prefix needs at least this.
	MinMTUv6 = 1280
	// MaxRoutes bounds the number of routes one request may add.
	MaxRoutes = 64
	// MinRouteBitsV4 and MinRouteBitsV6 are the shortest prefixes accepted:
	// anything wider would capture most of the host's traffic.
	MinRouteBitsV4 = 8
	MinRouteBitsV6 = 16
)

// Spec describes the device the root helper creates.
type Spec struct {
	// Name is the interface name; it must match ^tele[0-9]{1,3}$.
	Name string
	// MTU of the device.
	MTU int
	// Addr is the session's own address on the device, a /32 or /128.
	Addr netip.Prefix
	// Addr6, when valid, is a second address, an IPv6 ULA /128 (see
	// [NeedsAddr6]); only darwin's Create takes one.
	Addr6 netip.Prefix
	// Routes are the cluster CIDRs sent to the device.
	Routes []netip.Prefix
}

var nameRE = regexp.MustCompile(`^tele[0-9]{1,3}$`)

// ValidateName reports whether name is an interface name this package may
// create or delete. Restricting root to names of our own pattern is what
// keeps Remove from deleting the user's eth0.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("device name %q: must match %s", name, nameRE)
	}
	return nil
}

// reserved are ranges a route or address must not touch: sending them to the
// cluster would break the host (loopback, link-local, multicast) or is
// meaningless.
var reserved = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" range"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback range"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local range"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast range"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved/broadcast range"},
	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback address"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped range"},
	{netip.MustParsePrefix("fe80::/10"), "link-local range"},
	{netip.MustParsePrefix("ff00::/8"), "multicast range"},
}

func checkReserved(p netip.Prefix) error {
	for _, r := range reserved {
		if r.p.Overlaps(p) {
			return fmt.Errorf("overlaps the %s %s", r.what, r.p)
		}
	}
	return nil
}

// ValidateRoute checks one cluster CIDR: valid, in canonical (masked, unmapped)
// form, not a default route, not too wide, and clear of loopback, link-local
// and multicast ranges.
func ValidateRoute(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("route %s: invalid prefix", p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("route %s: IPv4-mapped IPv6 prefix; write it as IPv4", p)
	}
	if p != p.Masked() {
		return fmt.Errorf("route %s: host bits set; did you mean %s?", p, p.Masked())
	}
	if p.Bits() == 0 {
		return fmt.Errorf("route %s: refusing to take over the default route", p)
	}
	minBits := MinRouteBitsV4
	if p.Addr().Is6() {
		minBits = MinRouteBitsV6
	}
	if p.Bits() < minBits {
		return fmt.Errorf("route %s: prefix shorter than /%d is too wide", p, minBits)
	}
	if err := checkReserved(p); err != nil {
		return fmt.Errorf("route %s: %w", p, err)
	}
	return nil
}

// ValidateAddr checks the session's own address: a single host (/32 or /128)
// outside the reserved ranges.
func ValidateAddr(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("address %s: invalid prefix", p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("address %s: IPv4-mapped IPv6 address; write it as IPv4", p)
	}
	if p.Bits() != p.Addr().BitLen() {
		return fmt.Errorf("address %s: must be a single host (/%d)", p, p.Addr().BitLen())
	}
	if err := checkReserved(p); err != nil {
		return fmt.Errorf("address %s: %w", p, err)
	}
	return nil
}

// ValidateSpec checks every field of s. The root helper calls it before
// touching the kernel, because it acts as root on a user's behalf.
func ValidateSpec(s Spec) error {
	var errs []error
	if err := ValidateName(s.Name); err != nil {
		errs = append(errs, err)
	}
	v6 := false
	if err := ValidateAddr(s.Addr); err != nil {
		errs = append(errs, err)
	} else if s.Addr.Addr().Is6() {
		v6 = true
	}
	if s.Addr6.IsValid() {
		if err := ValidateAddr6(s.Addr6); err != nil {
			errs = append(errs, err)
		} else if s.Addr.Addr().Is6() {
			errs = append(errs, fmt.Errorf("IPv6 address %s: the address %s is IPv6 already", s.Addr6, s.Addr))
		}
		v6 = true
	}
	if len(s.Routes) > MaxRoutes {
		errs = append(errs, fmt.Errorf("%d routes: at most %d are allowed", len(s.Routes), MaxRoutes))
	} else {
		seen := make(map[netip.Prefix]bool, len(s.Routes))
		for _, r := range s.Routes {
			if err := ValidateRoute(r); err != nil {
				errs = append(errs, err)
				continue
			}
			if seen[r] {
				errs = append(errs, fmt.Errorf("route %s: listed twice", r))
			}
			seen[r] = true
			v6 = v6 || r.Addr().Is6()
		}
	}
	switch {
	case s.MTU < MinMTU || s.MTU > MaxMTU:
		errs = append(errs, fmt.Errorf("MTU %d: must be between %d and %d", s.MTU, MinMTU, MaxMTU))
	case v6 && s.MTU < MinMTUv6:
		errs = append(errs, fmt.Errorf("MTU %d: IPv6 needs at least %d", s.MTU, MinMTUv6))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid device spec for %q: %w", s.Name, err)
	}
	return nil
}
