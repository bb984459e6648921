//go:build linux && root

package device

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestFence: while the device lives, the nameserver is reached through it;
// once the device is gone (the daemon died), a socket to the nameserver is
// refused at once, even with a default route that would swallow its
// packets; Unfence removes what Fence added, and only that.
func TestFence(t *testing.T) {
	enterNetns(t)
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	// A default route, as a real laptop has: through a veth whose peer,
	// here too, forwards nothing, so what goes there is dropped unanswered.
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink1"}); err != nil {
		t.Skipf("no veth device for a default route: %v", err)
	}
	uplink, err := netlink.LinkByName("uplink0")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uplink0", "uplink1"} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: uplink.Attrs().Index, Dst: ipNet(pfx("0.0.0.0/0"))}); err != nil {
		t.Fatal(err)
	}

	s := validSpec()
	ns := netip.MustParseAddr("10.96.0.10")
	f, err := Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := Fence(s, ns); err != nil {
		f.Close()
		t.Fatalf("Fence: %v", err)
	}
	if err := Fence(s, ns); err != nil {
		f.Close()
		t.Fatalf("Fence again: %v", err)
	}
	tele, err := netlink.LinkByName(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := netlink.RouteGet(ns.AsSlice()); err != nil || len(rs) == 0 || rs[0].LinkIndex != tele.Attrs().Index {
		t.Errorf("the nameserver is routed %v (%v), want through %s", rs, err, s.Name)
	}
	if got, err := Fences(); err != nil || !slices.Equal(got, []netip.Addr{ns}) {
		t.Errorf("Fences() = %v, %v; want [%s]", got, err, ns)
	}
	// Conflict checks see neither the fence nor its route through our
	// device as someone else's.
	existing, err := ListRoutes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckConflicts(s.Routes, existing, s.Name); err != nil {
		t.Errorf("CheckConflicts with the fence in place: %v", err)
	}

	f.Close() // the daemon dies
	waitGone(t, s.Name)
	start := time.Now()
	c, err := net.Dial("udp", net.JoinHostPort(ns.String(), "53"))
	if err == nil {
		c.Close()
		t.Fatal("a socket to the fenced nameserver connected after the device went")
	}
	if !errors.Is(err, unix.EHOSTUNREACH) && !errors.Is(err, unix.ENETUNREACH) {
		t.Errorf("dial the fenced nameserver: %v, want unreachable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refused after %v, want at once", d)
	}

	if err := Unfence(); err != nil {
		t.Fatalf("Unfence: %v", err)
	}
	if got, err := Fences(); err != nil || len(got) != 0 {
		t.Errorf("Fences() after Unfence = %v, %v", got, err)
	}
	if rs, err := netlink.RouteGet(ns.AsSlice()); err != nil || len(rs) == 0 || rs[0].LinkIndex != uplink.Attrs().Index {
		t.Errorf("after Unfence the nameserver is routed %v (%v), want the default route", rs, err)
	}
}
