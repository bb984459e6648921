//go:build linux && root

package device

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// enterNetns moves the calling goroutine's thread into a new, empty network
// namespace for the rest of the test, so that nothing touches the host's
// network. The thread is never unlocked: Go discards it when the test's
// goroutine exits. Everything namespace-sensitive must therefore run on the
// test goroutine itself (no t.Run, no t.Cleanup, no helper goroutines making
// sockets or netlink calls).
func enterNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the root tag's tests need root: run them with make unit-root")
	}
	if _, err := os.Stat(cloneDevicePath); err != nil {
		t.Skipf("needs %s: %v", cloneDevicePath, err)
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
}

func routesOn(t *testing.T, link netlink.Link, family int) []netip.Prefix {
	t.Helper()
	rs, err := netlink.RouteList(link, family)
	if err != nil {
		t.Fatalf("list routes of %s: %v", link.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if p, ok := prefixOf(r.Dst); ok {
			out = append(out, p)
		}
	}
	return out
}

// waitGone waits for the kernel's RTM_DELLINK of the device: it is removed
// when its last file is closed.
func waitGone(t *testing.T, name string) {
	t.Helper()
	updates, done := make(chan netlink.LinkUpdate), make(chan struct{})
	defer func() {
		close(done)
		for range updates { // until the subscription's goroutine ends
		}
	}()
	// Subscribed before the lookup, so a removal between the two is seen.
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		t.Fatalf("subscribe to link updates: %v", err)
	}
	timeout := time.After(5 * time.Second)
	_, err := netlink.LinkByName(name)
	for {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return
		}
		select {
		case u := <-updates:
			if u.Header.Type == unix.RTM_DELLINK && u.Attrs().Name == name {
				return
			}
		case <-timeout:
			t.Fatalf("device %s still exists (lookup error: %v)", name, err)
		}
	}
}

func udpPayloadTo(p []byte, dst netip.AddrPort) ([]byte, bool) {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return nil, false
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) < ihl+8 || netip.AddrFrom4([4]byte(p[16:20])) != dst.Addr() ||
		binary.BigEndian.Uint16(p[ihl+2:]) != dst.Port() {
		return nil, false
	}
	return p[ihl+8:], true
}

func TestCreateSendReceive(t *testing.T) {
	enterNetns(t)
	ctx := context.Background()
	spec := Spec{
		Name:   "tele7",
		MTU:    1400,
		Addr:   pfx("198.18.0.1/32"),
		Routes: []netip.Prefix{pfx("10.96.0.0/12"), pfx("172.20.0.0/16")},
	}

	host, err := ListRoutes(ctx)
	if err != nil {
		t.Fatalf("ListRoutes: %v", err)
	}
	if err := CheckConflicts(spec.Routes, host, spec.Name); err != nil {
		t.Fatalf("fresh namespace has conflicts: %v", err)
	}

	f, err := Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer f.Close()

	link, err := netlink.LinkByName(spec.Name)
	if err != nil {
		t.Fatalf("device not created: %v", err)
	}
	if link.Type() != "tuntap" || link.Attrs().MTU != spec.MTU || link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("device: type %s, MTU %d, flags %v; want tuntap, %d, up", link.Type(), link.Attrs().MTU, link.Attrs().Flags, spec.MTU)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != spec.Addr.String() {
		t.Errorf("addresses = %v, want [%s]", addrs, spec.Addr)
	}
	if got := routesOn(t, link, netlink.FAMILY_V4); !slices.Equal(got, spec.Routes) {
		t.Errorf("routes on %s = %v, want %v", spec.Name, got, spec.Routes)
	}

	// Listing sees our routes; they are ours, and another session's to avoid.
	host, err = ListRoutes(ctx)
	if err != nil {
		t.Fatalf("ListRoutes: %v", err)
	}
	if !slices.Contains(host, Route{spec.Routes[0], spec.Name}) {
		t.Errorf("ListRoutes() = %v, want it to contain %s on %s", host, spec.Routes[0], spec.Name)
	}
	if err := CheckConflicts(spec.Routes, host, spec.Name); err != nil {
		t.Errorf("own routes reported as conflicts: %v", err)
	}
	if err := CheckConflicts([]netip.Prefix{pfx("10.100.0.0/16")}, host, "tele8"); err == nil ||
		!strings.Contains(err.Error(), "10.96.0.0/12 on device tele7") {
		t.Errorf("conflict with another session's device: got %v", err)
	}

	// The name is taken: a second Create fails and leaves the first alone.
	if f2, err := Create(ctx, spec); err == nil {
		f2.Close()
		t.Errorf("second Create(%s) succeeded", spec.Name)
	}

	// Hand the descriptor over, as the helper does, and drop ours.
	a, b := socketPair(t, unix.SOCK_STREAM)
	if err := SendFile(a, f, []byte(spec.Name)); err != nil {
		t.Fatalf("SendFile: %v", err)
	}
	f.Close()
	rf, meta, err := ReceiveFile(b)
	if err != nil {
		t.Fatalf("ReceiveFile: %v", err)
	}
	if string(meta) != spec.Name {
		t.Errorf("meta = %q, want %q", meta, spec.Name)
	}
	dev, err := tun.CreateTUNFromFile(rf, spec.MTU)
	if err != nil {
		rf.Close()
		t.Fatalf("CreateTUNFromFile: %v", err)
	}
	closeDev := sync.OnceFunc(func() { dev.Close() })
	defer closeDev()
	if name, _ := dev.Name(); name != spec.Name {
		t.Errorf("received device is %q, want %q", name, spec.Name)
	}
	if mtu, _ := dev.MTU(); mtu != spec.MTU {
		t.Errorf("received device MTU %d, want %d", mtu, spec.MTU)
	}

	// The reader owns no sockets, so it may run on another thread; it ends
	// when the device is closed.
	dst := netip.MustParseAddrPort("10.96.0.10:53")
	payload := []byte("hello from kubectl-tele")
	found := make(chan []byte, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		const offset = 16
		bufs := make([][]byte, dev.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, offset+65535)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := dev.Read(bufs, sizes, offset)
			if err != nil {
				return
			}
			for i := range n {
				if p, ok := udpPayloadTo(bufs[i][offset:offset+sizes[i]], dst); ok {
					select {
					case found <- slices.Clone(p):
					default:
					}
				}
			}
		}
	})

	uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer uc.Close()
	if src := uc.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); src != spec.Addr.Addr() {
		t.Errorf("source address %s, want %s", src, spec.Addr.Addr())
	}
	if _, err := uc.Write(payload); err != nil {
		t.Fatalf("write to %s: %v", dst, err)
	}
	select {
	case got := <-found:
		if !bytes.Equal(got, payload) {
			t.Errorf("payload %q, want %q", got, payload)
		}
	case <-time.After(10 * time.Second):
		t.Error("no packet to " + dst.String() + " came out of the TUN device")
	}

	// Closing the last descriptor deletes the device and its routes.
	closeDev()
	wg.Wait()
	waitGone(t, spec.Name)
	host, err = ListRoutes(ctx)
	if err != nil {
		t.Fatalf("ListRoutes: %v", err)
	}
	for _, r := range host {
		if slices.Contains(spec.Routes, r.Prefix) {
			t.Errorf("route %v outlived the device", r)
		}
	}
}

func TestCreateIPv6(t *testing.T) {
	enterNetns(t)
	spec := Spec{
		Name:   "tele6",
		MTU:    1280,
		Addr:   pfx("fd00:1::1/128"),
		Routes: []netip.Prefix{pfx("fd00:96::/108"), pfx("10.96.0.0/12")},
	}
	f, err := Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer f.Close()
	link, err := netlink.LinkByName(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	got := routesOn(t, link, netlink.FAMILY_ALL)
	for _, r := range spec.Routes {
		if !slices.Contains(got, r) {
			t.Errorf("routes on %s = %v, want %s among them", spec.Name, got, r)
		}
	}
	// NODAD makes the address usable at once.
	uc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: spec.Addr.Addr().AsSlice()})
	if err != nil {
		t.Fatalf("bind to %s right after Create: %v", spec.Addr.Addr(), err)
	}
	uc.Close()
}

func TestCreateCancelled(t *testing.T) {
	enterNetns(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := validSpec()
	if f, err := Create(ctx, s); !errors.Is(err, context.Canceled) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Create(cancelled) = %v, want context.Canceled", err)
	}
	waitGone(t, s.Name)
}

func TestRemove(t *testing.T) {
	enterNetns(t)
	s := validSpec()
	s.Name = "tele9"
	// Simulate a hung daemon that still holds the descriptor.
	f, err := Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer f.Close()
	if err := Remove(s.Name); err != nil {
		t.Fatalf("Remove(%s): %v", s.Name, err)
	}
	waitGone(t, s.Name)
	if err := Remove(s.Name); err != nil {
		t.Errorf("Remove of a missing device = %v, want nil", err)
	}
	if err := Remove("eth0"); err == nil {
		t.Error("Remove(eth0) succeeded")
	}
	// A device of our name that is not a TUN is left alone.
	var added bool
	for _, l := range []netlink.Link{
		&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "tele5"}},
		&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "tele5"}},
		&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tele5"}, PeerName: "peer5"},
	} {
		if err := netlink.LinkAdd(l); err != nil {
			t.Logf("cannot add a %s link: %v", l.Type(), err)
			continue
		}
		added = true
		break
	}
	if !added {
		t.Log("skipping the non-TUN case")
		return
	}
	if err := Remove("tele5"); err == nil || !strings.Contains(err.Error(), "not a TUN") {
		t.Errorf("Remove(dummy tele5) = %v, want refusal", err)
	}
	if _, err := netlink.LinkByName("tele5"); err != nil {
		t.Errorf("dummy tele5 was removed: %v", err)
	}
}

const helperEnv = "KUBECTL_TELE_DEVICE_TEST_HELPER"

// TestOpenUnprivileged hands the device to a child process that has dropped
// CAP_NET_ADMIN, as the daemon runs: tun.CreateTUNFromFile fails there (it
// sets the MTU), Open works both ways.
func TestOpenUnprivileged(t *testing.T) {
	enterNetns(t)
	s := validSpec()
	f, err := Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer f.Close()
	// Started from the locked thread, the child inherits the namespace.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUnprivilegedReceiver$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperUnprivilegedReceiver") {
		t.Fatalf("unprivileged receiver failed: %v\n%s", err, out)
	}
	t.Logf("child process:\n%s", out)
}

// TestHelperUnprivilegedReceiver is the child of TestOpenUnprivileged.
func TestHelperUnprivilegedReceiver(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("run by TestOpenUnprivileged")
	}
	// Capabilities are per thread: drop CAP_NET_ADMIN from this one and keep
	// the goroutine on it.
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	s := validSpec()

	dup, err := unix.Dup(3)
	if err != nil {
		t.Fatal(err)
	}

	dev, err := Open(os.NewFile(3, "tun"))
	if err != nil {
		t.Fatalf("Open without CAP_NET_ADMIN: %v", err)
	}
	defer dev.Close()
	if mtu, err := dev.MTU(); mtu != s.MTU {
		t.Errorf("MTU = %d, %v; want %d", mtu, err, s.MTU)
	}

	// Write direction: a UDP packet from the cluster reaches a local socket.
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.Addr.Addr().AsSlice(), Port: 9999})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := []byte("reply from the cluster")
	pkt := udp4Packet(netip.MustParseAddrPort("10.96.0.10:53"), netip.AddrPortFrom(s.Addr.Addr(), 9999), payload)
	const offset = 16
	buf := make([]byte, offset+len(pkt))
	copy(buf[offset:], pkt)
	if _, err := dev.Write([][]byte{buf}, offset); err != nil {
		t.Fatalf("write to TUN: %v", err)
	}
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 100)
	n, from, err := ln.ReadFromUDPAddrPort(got)
	if err != nil {
		t.Fatalf("read from socket: %v", err)
	}
	if string(got[:n]) != string(payload) || from.String() != "10.96.0.10:53" {
		t.Errorf("got %q from %s, want %q from 10.96.0.10:53", got[:n], from, payload)
	}

	// Last, because on this error path wireguard-go closes its netlink socket
	// twice (once in CreateTUNFromFile, once in its listener goroutine) and
	// may close whatever descriptor reused that number in between.
	if _, err := tun.CreateTUNFromFile(os.NewFile(uintptr(dup), "tun"), s.MTU); !errors.Is(err, unix.EPERM) {
		t.Errorf("CreateTUNFromFile without CAP_NET_ADMIN = %v, want EPERM", err)
	}
}

func udp4Packet(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:], ^checksum(p[:20], 0))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	pseudo := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, unix.IPPROTO_UDP, byte(len(u)>>8), byte(len(u)))
	binary.BigEndian.PutUint16(u[6:], ^checksum(u, checksum(pseudo, 0)))
	return p
}

func checksum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
