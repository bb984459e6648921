package device

import (
	"net/netip"
	"strconv"
)

// DarwinCommands returns the ifconfig and route command lines that give the
// utun interface iface the address, MTU and routes of s, in order. iface is
// the kernel-assigned utunN name (s.Name does not apply on darwin). Routes on a
// utun disappear with it, so there are no matching delete commands.
func DarwinCommands(iface string, s Spec) [][]string {
	a := s.Addr.Addr()
	var cmds [][]string
	if a.Is4() {
		// A utun is point-to-point: give it our address as both ends.
		cmds = append(cmds, []string{"ifconfig", iface, "inet", a.String(), a.String(),
			"netmask", "255.255.255.255", "mtu", strconv.Itoa(s.MTU), "up"})
	} else {
		cmds = append(cmds,
			[]string{"ifconfig", iface, "inet6", a.String(), "prefixlen", "128"},
			[]string{"ifconfig", iface, "mtu", strconv.Itoa(s.MTU), "up"})
	}
	for _, r := range s.Routes {
		family := "-inet"
		if r.Addr().Is6() {
			family = "-inet6"
		}
		cmds = append(cmds, []string{"route", "-n", "add", family, "-net", r.String(), "-interface", iface})
	}
	return cmds
}

// WindowsCommands returns the netsh command lines that give the wintun adapter
// s.Name the address, MTU and routes of s, in order. store=active keeps them
// off the persistent configuration so that nothing survives a reboot.
func WindowsCommands(s Spec) [][]string {
	iface := "interface=" + s.Name
	mtu := "mtu=" + strconv.Itoa(s.MTU)
	// The MTU is per address family on Windows: set it for each one in use.
	families := []string{netshFamily(s.Addr)}
	for _, r := range s.Routes {
		if f := netshFamily(r); f != families[0] {
			families = append(families, f)
			break
		}
	}
	var cmds [][]string
	for _, f := range families {
		cmds = append(cmds, []string{"netsh", "interface", f, "set", "subinterface", s.Name, mtu, "store=active"})
	}
	a := s.Addr.Addr()
	if a.Is4() {
		cmds = append(cmds, []string{"netsh", "interface", "ipv4", "add", "address", "name=" + s.Name, "address=" + a.String(), "mask=255.255.255.255", "store=active"})
	} else {
		cmds = append(cmds, []string{"netsh", "interface", "ipv6", "add", "address", iface, "address=" + a.String() + "/128", "store=active"})
	}
	for _, r := range s.Routes {
		cmds = append(cmds, []string{"netsh", "interface", netshFamily(r), "add", "route", "prefix=" + r.String(), iface, "store=active"})
	}
	return cmds
}

func netshFamily(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "ipv6"
	}
	return "ipv4"
}
