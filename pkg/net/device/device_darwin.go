package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Create creates a utun device for s and returns its file, like the Linux
// version. On darwin the kernel names the device (utunN, the first free
// unit); s.Name is only the session's name for it and the returned file is
// named after the utun. The device lives as long as a descriptor for it is
// open, and its addresses and routes go with it.
//
// The steps are those of `ifconfig utunN inet A A netmask 255.255.255.255
// mtu M up` (and `inet6 U prefixlen 128` when s.Addr6 is set) and
// `route -n add -net P -interface utunN`, done with ioctls on an AF_INET
// (AF_INET6) datagram socket and messages on the routing socket.
func Create(ctx context.Context, s Spec) (_ *os.File, err error) {
	if err := ValidateSpec(s); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create device %s: %w", s.Name, err)
	}
	f, name, err := openUtun()
	if err != nil {
		return nil, fmt.Errorf("create device %s: %w", s.Name, err)
	}
	defer func() {
		if err != nil {
			f.Close() // the utun goes with its only descriptor
		}
	}()
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("create device %s (%s): look up: %w", s.Name, name, err)
	}
	step := func(what string, fn func() error) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("create device %s (%s): %s: %w", s.Name, name, what, err)
		}
		if err := fn(); err != nil {
			return fmt.Errorf("create device %s (%s): %s: %w", s.Name, name, what, err)
		}
		return nil
	}
	if err := step(fmt.Sprintf("set MTU %d", s.MTU), func() error { return setMTU(name, s.MTU) }); err != nil {
		return nil, err
	}
	if err := step("add address "+s.Addr.String(), func() error { return addAddr(name, s.Addr.Addr()) }); err != nil {
		return nil, err
	}
	if s.Addr6.IsValid() {
		// Before the routes: XNU refuses an IPv6 route to an interface
		// with no IPv6 address (see NeedsAddr6).
		if err := step("add address "+s.Addr6.String(), func() error { return addAddr(name, s.Addr6.Addr()) }); err != nil {
			return nil, err
		}
	}
	if err := step("set up", func() error { return setUp(name) }); err != nil {
		return nil, err
	}
	ops, err := planRoutes(darwinRTMAdd, iface.Index, name, s.Routes)
	if err != nil {
		return nil, fmt.Errorf("create device %s (%s): %w", s.Name, name, err)
	}
	if err := step("add routes", func() error { return writeRoutes(ops) }); err != nil {
		return nil, err
	}
	slog.Info("created TUN device", "device", s.Name, "utun", name, "addr", s.Addr, "addr6", s.Addr6, "mtu", s.MTU, "routes", s.Routes)
	return f, nil
}

// The utun kernel control (<net/if_utun.h>, <sys/kern_control.h>).
const (
	utunControlName = "com.apple.net.utun_control"
	sysprotoControl = 2 // SYSPROTO_CONTROL
	utunOptIfname   = 2 // UTUN_OPT_IFNAME
)

// openUtun opens a new utun, as wireguard-go's tun.CreateTUN and
// Telepresence's openTun do: a kernel-control socket connected to the utun
// control with unit 0, so the kernel picks the first free utunN. It is
// opened here rather than with tun.CreateTUN, which wraps the socket in a
// device that also opens a routing socket and starts a goroutine reading it
// (routineRouteListener, for Events), and writes the name to any path in
// $WG_TUN_NAME_FILE, as root: the helper needs only the descriptor. The
// daemon's Open does wrap it, with tun.CreateTUNFromFile, whose Events the
// stack reads.
func openUtun() (*os.File, string, error) {
	fd, err := socketCloexec(unix.AF_SYSTEM, unix.SOCK_DGRAM, sysprotoControl)
	if err != nil {
		return nil, "", fmt.Errorf("utun control socket: %w", err)
	}
	info := &unix.CtlInfo{}
	copy(info.Name[:], utunControlName)
	if err := unix.IoctlCtlInfo(fd, info); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("CTLIOCGINFO %s: %w", utunControlName, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrCtl{ID: info.Id, Unit: 0}); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("connect to %s: %w", utunControlName, err)
	}
	// Non-blocking before os.NewFile, so that the file uses the runtime's
	// poller, as wireguard-go's does.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("set non-blocking: %w", err)
	}
	name, err := unix.GetsockoptString(fd, sysprotoControl, utunOptIfname)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("UTUN_OPT_IFNAME: %w", err)
	}
	return os.NewFile(uintptr(fd), name), name, nil
}

// socketCloexec opens a close-on-exec socket; darwin has no SOCK_CLOEXEC,
// so the flag is set right after, under the fork lock as the syscall
// package does.
func socketCloexec(family, sotype, proto int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(family, sotype, proto)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// ifSocket runs fn with a datagram socket of family af, for interface
// ioctls.
func ifSocket(af int, fn func(fd int) error) error {
	fd, err := socketCloexec(af, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// ioctl issues one interface ioctl whose argument is a struct (arg, as
// ifreq.go lays it out) on a datagram socket of family af, through
// libSystem's ioctl(2) as every system call of x/sys/unix on darwin goes
// (a raw SYS_IOCTL trap bypasses libSystem, which Apple does not support).
// x/sys/unix has typed wrappers for few of these (IoctlSetIfreqMTU,
// IoctlCtlInfo: used where they exist); for the others IoctlSetInt passes
// the struct's address as ioctl's third argument, as Telepresence's vif
// does. The struct is pinned for the call: the kernel reads (and for
// SIOCGIFFLAGS writes) it while the address travels as an integer.
func ioctl[T any](af int, req uint, arg *T) error {
	var pin runtime.Pinner
	pin.Pin(arg)
	defer pin.Unpin()
	return ifSocket(af, func(fd int) error {
		return unix.IoctlSetInt(fd, req, int(uintptr(unsafe.Pointer(arg))))
	})
}

func setMTU(ifName string, mtu int) error {
	var req unix.IfreqMTU
	if len(ifName) >= len(req.Name) {
		return fmt.Errorf("interface name %q is too long", ifName)
	}
	copy(req.Name[:], ifName)
	req.MTU = int32(mtu)
	return ifSocket(unix.AF_INET, func(fd int) error {
		if err := unix.IoctlSetIfreqMTU(fd, &req); err != nil {
			return fmt.Errorf("SIOCSIFMTU: %w", err)
		}
		return nil
	})
}

func addAddr(ifName string, a netip.Addr) error {
	if a.Is4() {
		req, err := ifAliasReq4(ifName, a)
		if err != nil {
			return err
		}
		if err := ioctl(unix.AF_INET, unix.SIOCAIFADDR, &req); err != nil {
			return fmt.Errorf("SIOCAIFADDR: %w", err)
		}
		return nil
	}
	req, err := in6AliasReq(ifName, a)
	if err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET6, darwinSIOCAIFADDRIn6Value, &req); err != nil {
		return fmt.Errorf("SIOCAIFADDR_IN6: %w", err)
	}
	return nil
}

func setUp(ifName string) error {
	req, err := ifreqFlags(ifName, 0)
	if err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET, unix.SIOCGIFFLAGS, &req); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	if req, err = ifreqFlags(ifName, ifreqFlagsOf(req)|darwinIffUp); err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET, unix.SIOCSIFFLAGS, &req); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// routeMessage turns a planned operation into the routing-socket message.
func routeMessage(op routeOp) *route.RouteMessage {
	addrs := make([]route.Addr, unix.RTAX_NETMASK+1)
	addrs[unix.RTAX_DST] = inetAddr(op.Dst)
	addrs[unix.RTAX_GATEWAY] = &route.LinkAddr{Index: op.IfIndex, Name: op.IfName}
	if op.Mask.IsValid() {
		addrs[unix.RTAX_NETMASK] = inetAddr(op.Mask)
	}
	return &route.RouteMessage{
		Version: unix.RTM_VERSION,
		Type:    op.Type,
		Flags:   op.Flags,
		Index:   op.IfIndex,
		ID:      uintptr(os.Getpid()),
		Seq:     op.Seq,
		Addrs:   addrs,
	}
}

func inetAddr(a netip.Addr) route.Addr {
	if a.Is4() {
		return &route.Inet4Addr{IP: a.As4()}
	}
	return &route.Inet6Addr{IP: a.As16()}
}

// writeRoutes writes ops to a routing socket, one message each. The kernel
// answers a bad message with an error from write(2), so no reply is read.
func writeRoutes(ops []routeOp) error {
	if len(ops) == 0 {
		return nil
	}
	fd, err := socketCloexec(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("routing socket: %w", err)
	}
	defer unix.Close(fd)
	// We read no replies: SO_USELOOPBACK off keeps the kernel from queueing
	// our own messages back to us.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_USELOOPBACK, 0)
	for _, op := range ops {
		b, err := routeMessage(op).Marshal()
		if err != nil {
			return fmt.Errorf("route %s: marshal: %w", opPrefix(op), err)
		}
		if _, err := unix.Write(fd, b); err != nil {
			if op.Type == darwinRTMAdd && errors.Is(err, unix.EEXIST) {
				p := opPrefix(op)
				return fmt.Errorf("add route %s: %w (the host already has a route for exactly %s; use --never-proxy %s)", p, err, p, p)
			}
			return fmt.Errorf("route %s: %w", opPrefix(op), err)
		}
	}
	return nil
}

func opPrefix(op routeOp) netip.Prefix {
	bits := op.Dst.BitLen()
	if op.Mask.IsValid() {
		bits, _ = maskBits(op.Mask)
	}
	return netip.PrefixFrom(op.Dst, bits)
}

// Open wraps a utun file received with [ReceiveFile] as a tun.Device,
// without privilege. It takes ownership of f. The MTU argument is 0: the
// helper has set it, and setting it again needs root.
func Open(f *os.File) (tun.Device, error) {
	dev, err := tun.CreateTUNFromFile(f, 0)
	if err != nil {
		// CreateTUNFromFile has closed f.
		return nil, fmt.Errorf("open TUN file %s: %w", f.Name(), err)
	}
	name, _ := dev.Name()
	slog.Debug("opened TUN device", "device", name)
	return dev, nil
}

// Remove has nothing to delete on darwin: a utun exists only while a
// descriptor for it is open and the kernel picks its name, so there is no
// device named name that a crashed session could have left.
func Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("remove device: %w", err)
	}
	return nil
}

// ListRoutes returns the host's routes from the kernel's routing table
// (sysctl NET_RT_DUMP), for [CheckConflicts]; [routeFromRIB] says which
// entries count.
func ListRoutes(ctx context.Context) ([]Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	rib, err := route.FetchRIB(unix.AF_UNSPEC, route.RIBTypeRoute, 0)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	msgs, err := route.ParseRIB(route.RIBTypeRoute, rib)
	if err != nil {
		return nil, fmt.Errorf("list routes: parse: %w", err)
	}
	names := map[int]string{}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list routes: interfaces: %w", err)
	}
	for _, i := range ifaces {
		names[i.Index] = i.Name
	}
	var out []Route
	for _, m := range msgs {
		rm, ok := m.(*route.RouteMessage)
		if !ok || len(rm.Addrs) <= unix.RTAX_NETMASK {
			continue
		}
		dst := addrOf(rm.Addrs[unix.RTAX_DST])
		mask := addrOf(rm.Addrs[unix.RTAX_NETMASK])
		if r, ok := routeFromRIB(dst, mask, rm.Flags, names[rm.Index]); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func addrOf(a route.Addr) netip.Addr {
	switch a := a.(type) {
	case *route.Inet4Addr:
		return netip.AddrFrom4(a.IP)
	case *route.Inet6Addr:
		return netip.AddrFrom16(a.IP)
	}
	return netip.Addr{}
}
