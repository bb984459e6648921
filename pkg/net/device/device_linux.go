package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

const cloneDevicePath = "/dev/net/tun"

// Create creates the TUN device described by s in the calling thread's network
// namespace, gives it s.Addr and s.MTU, brings it up and routes s.Routes to it.
// It returns the device's file: the device lives as long as a descriptor for
// that file is open, so pass it on with [SendFile] and close it. On error
// nothing is left behind.
//
// Create does not check s.Routes against the host's routes; call
// [ListRoutes] and [CheckConflicts] first unless the user allowed conflicts.
// It fails if a device named s.Name already exists (see [Remove]).
//
// Everything happens on the calling goroutine, so a caller that locked its
// thread into another network namespace (as the tests do) gets the device
// there.
func Create(ctx context.Context, s Spec) (_ *os.File, err error) {
	if err := ValidateSpec(s); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create device %s: %w", s.Name, err)
	}
	if s.Addr6.IsValid() {
		// NeedsAddr6 asks for one on darwin only.
		return nil, fmt.Errorf("create device %s: a second address (%s) is for macOS only", s.Name, s.Addr6)
	}
	f, err := openTUN(s.Name)
	if err != nil {
		return nil, fmt.Errorf("create device %s: %w", s.Name, err)
	}
	defer func() {
		if err != nil {
			f.Close() // the device goes with its only descriptor
		}
	}()

	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("create device %s: netlink: %w", s.Name, err)
	}
	defer h.Close()
	link, err := h.LinkByName(s.Name)
	if err != nil {
		return nil, fmt.Errorf("create device %s: look up: %w", s.Name, err)
	}
	step := func(what string, fn func() error) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("create device %s: %w", s.Name, err)
		}
		if err := fn(); err != nil {
			return fmt.Errorf("create device %s: %s: %w", s.Name, what, err)
		}
		return nil
	}
	if err := step(fmt.Sprintf("set MTU %d", s.MTU), func() error { return h.LinkSetMTU(link, s.MTU) }); err != nil {
		return nil, err
	}
	addr := &netlink.Addr{IPNet: ipNet(s.Addr)}
	if s.Addr.Addr().Is6() {
		// Skip duplicate address detection: the address is ours alone on a
		// point-to-point device, and DAD would leave it unusable ("tentative")
		// for a second or more.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := step("add address "+s.Addr.String(), func() error { return h.AddrAdd(link, addr) }); err != nil {
		return nil, err
	}
	if err := step("set up", func() error { return h.LinkSetUp(link) }); err != nil {
		return nil, err
	}
	for _, r := range s.Routes {
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       ipNet(r),
			Scope:     netlink.SCOPE_LINK,
		}
		if r.Addr().Is4() == s.Addr.Addr().Is4() {
			route.Src = s.Addr.Addr().AsSlice()
		}
		// RouteAdd, not RouteReplace: replacing would silently take over a
		// route of another device and not give it back when we close.
		if err := step("add route "+r.String(), func() error { return h.RouteAdd(route) }); err != nil {
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w (the host already has a route for exactly %s; use --never-proxy %s)", err, r, r)
			}
			return nil, err
		}
	}
	slog.Info("created TUN device", "device", s.Name, "addr", s.Addr, "mtu", s.MTU, "routes", s.Routes)
	return f, nil
}

// openTUN creates the kernel device: IFF_TUN_EXCL refuses an existing device
// of that name rather than attaching to it (a persistent tun left by someone
// else would bring its own configuration); no IFF_VNET_HDR (see the package
// doc).
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open(cloneDevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		return nil, fmt.Errorf("this machine has no TUN support (open %s: %w): load the tun kernel module (modprobe tun), or in a container pass the device /dev/net/tun", cloneDevicePath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cloneDevicePath, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("TUNSETIFF: %w (a device named %s already exists; if a crashed session left it, remove it)", err, name)
		}
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%s is not a TUN device (TUNSETIFF: %w): load the tun kernel module (modprobe tun)", cloneDevicePath, err)
		}
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if got := ifr.Name(); got != name {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: kernel named the device %q, want %q", got, name)
	}
	// Non-blocking before os.NewFile, so the file uses the runtime poller and
	// Close interrupts a blocked Read (wireguard-go does the same).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), cloneDevicePath), nil
}

// Open wraps a TUN file received with [ReceiveFile] as a tun.Device, without
// needing any privilege. It takes ownership of f.
//
// tun.CreateTUNFromFile would also work, but only with CAP_NET_ADMIN: it
// always sets the MTU with SIOCSIFMTU, which an unprivileged daemon may not
// do; on that failure it leaks its listener goroutines and closes its netlink
// socket twice, which can close an unrelated descriptor of the daemon (seen in
// the tests), so do not "try it and fall back". The helper has already set
// the MTU, so Open uses tun.CreateUnmonitoredTUNFromFD, which negotiates
// offloads from the device's flags like CreateTUNFromFile but does not touch
// the MTU; its Events channel never reports anything.
func Open(f *os.File) (tun.Device, error) {
	defer f.Close()
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("open TUN file %s: %w", f.Name(), err)
	}
	dup := -1
	var derr error
	if err := sc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("open TUN file %s: %w", f.Name(), err)
	}
	if derr != nil {
		return nil, fmt.Errorf("open TUN file %s: dup: %w", f.Name(), derr)
	}
	dev, name, err := tun.CreateUnmonitoredTUNFromFD(dup)
	if err != nil {
		// Not closing dup: on most failures wireguard-go has already wrapped
		// it in an *os.File whose finalizer closes it, and closing it here too
		// could close an unrelated descriptor that reused the number.
		return nil, fmt.Errorf("open TUN file %s: %w", f.Name(), err)
	}
	slog.Debug("opened TUN device", "device", name)
	return dev, nil
}

// Remove deletes the device name left by a crashed session, if it exists.
//
// A non-persistent TUN outlives its session only while some process still
// holds a descriptor for it (a hung daemon, a leaked child); the kernel
// deletes the device on the last close, and its routes with it, so there are
// never routes to clean up without the device. Remove deletes the link over
// netlink, which works while descriptors are held (their reads then fail),
// and refuses to delete a link of the same name that is not a TUN.
func Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("remove device: %w", err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return nil
		}
		return fmt.Errorf("remove device %s: look up: %w", name, err)
	}
	if typ := link.Type(); typ != "tuntap" {
		return fmt.Errorf("remove device %s: it is a %s device, not a TUN; not removing it", name, typ)
	}
	if err := netlink.LinkDel(link); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil // gone in between
		}
		return fmt.Errorf("remove device %s: %w", name, err)
	}
	slog.Info("removed leftover TUN device", "device", name)
	return nil
}

// ListRoutes returns the unicast routes of the main routing table that go out
// through a device, in the calling thread's network namespace, for
// [CheckConflicts]. Multipath routes give one entry per device.
func ListRoutes(ctx context.Context) ([]Route, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("list routes: netlink: %w", err)
	}
	defer h.Close()
	var nlRoutes []netlink.Route
	var links []netlink.Link
	// A dump interrupted by a concurrent change returns nothing useful;
	// retry a few times.
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		nlRoutes, err = h.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err == nil {
			links, err = h.LinkList()
		}
		if err == nil {
			break
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 4 {
			return nil, fmt.Errorf("list routes: %w", err)
		}
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []Route
	for _, r := range nlRoutes {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		idx := []int{r.LinkIndex}
		if len(r.MultiPath) > 0 {
			idx = idx[:0]
			for _, nh := range r.MultiPath {
				idx = append(idx, nh.LinkIndex)
			}
		}
		for _, i := range idx {
			if name, ok := names[i]; ok && i > 0 {
				out = append(out, Route{Prefix: p, Device: name})
			}
		}
	}
	return out, nil
}

// CheckPeer checks that the process at the other end of conn (the one that
// created the listening socket) runs as uid. The root helper calls it after
// connecting to the path [ValidateSocketPath] accepted, which closes the gap
// between that check and the connect.
func CheckPeer(conn *net.UnixConn, uid int) error {
	sc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	var cred *unix.Ucred
	var gerr error
	if err := sc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	if gerr != nil {
		return fmt.Errorf("check peer of %s: SO_PEERCRED: %w", conn.RemoteAddr(), gerr)
	}
	return checkPeerCred(fmt.Sprint(conn.RemoteAddr()), peerCred{PID: int(cred.Pid), UID: cred.Uid}, uid)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a netlink destination; v4 destinations may come as
// 16-byte IPs with 4-byte masks.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	if bits == 0 || ones < 0 || ones > a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}
