package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
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
// mtu M up` and `route -n add -net P -interface utunN`, done with ioctls on
// an AF_INET (AF_INET6) datagram socket and messages on the routing socket.
func Create(ctx context.Context, s Spec) (_ *os.File, err error) {
	if err := ValidateSpec(s); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create device %s: %w", s.Name, err)
	}
	// tun.CreateTUN opens the utun control socket, picks a free unit and
	// sets the MTU (SIOCSIFMTU). It also writes the utun's name, as root,
	// to any path in WG_TUN_NAME_FILE: never take that from the user's
	// environment.
	os.Unsetenv("WG_TUN_NAME_FILE")
	dev, err := tun.CreateTUN("utun", s.MTU)
	if err != nil {
		return nil, fmt.Errorf("create device %s: utun: %w", s.Name, err)
	}
	name, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("create device %s: utun name: %w", s.Name, err)
	}
	// Keep a descriptor of our own and let wireguard-go's device go: it
	// runs a routing-socket listener the helper has no use for. The utun
	// stays while our copy is open.
	f, err := dupFile(dev.File(), name)
	dev.Close()
	if err != nil {
		return nil, fmt.Errorf("create device %s (%s): %w", s.Name, name, err)
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
			return fmt.Errorf("create device %s (%s): %w", s.Name, name, err)
		}
		if err := fn(); err != nil {
			return fmt.Errorf("create device %s (%s): %s: %w", s.Name, name, what, err)
		}
		return nil
	}
	if err := step("add address "+s.Addr.String(), func() error { return addAddr(name, s.Addr.Addr()) }); err != nil {
		return nil, err
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
	slog.Info("created TUN device", "device", s.Name, "utun", name, "addr", s.Addr, "mtu", s.MTU, "routes", s.Routes)
	return f, nil
}

// dupFile returns a new file for a close-on-exec duplicate of f's
// descriptor, taken with SyscallConn so that f stays non-blocking.
func dupFile(f *os.File, name string) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var derr error
	if err := sc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(dup), name), nil
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

// ioctl issues one interface ioctl on a datagram socket of family af.
func ioctl(af int, req uint, arg unsafe.Pointer) error {
	fd, err := socketCloexec(af, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

func addAddr(ifName string, a netip.Addr) error {
	if a.Is4() {
		req, err := ifAliasReq4(ifName, a)
		if err != nil {
			return err
		}
		if err := ioctl(unix.AF_INET, unix.SIOCAIFADDR, unsafe.Pointer(&req[0])); err != nil {
			return fmt.Errorf("SIOCAIFADDR: %w", err)
		}
		return nil
	}
	req, err := in6AliasReq(ifName, a)
	if err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET6, darwinSIOCAIFADDRIn6Value, unsafe.Pointer(&req[0])); err != nil {
		return fmt.Errorf("SIOCAIFADDR_IN6: %w", err)
	}
	return nil
}

func setUp(ifName string) error {
	req, err := ifreqFlags(ifName, 0)
	if err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET, unix.SIOCGIFFLAGS, unsafe.Pointer(&req[0])); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	if req, err = ifreqFlags(ifName, ifreqFlagsOf(req)|darwinIffUp); err != nil {
		return err
	}
	if err := ioctl(unix.AF_INET, unix.SIOCSIFFLAGS, unsafe.Pointer(&req[0])); err != nil {
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
