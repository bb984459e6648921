//go:build darwin && smoke

package macos

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
)

// Documentation ranges only (RFC 5737, RFC 4193 with a fixed global ID):
// nothing of the runner's uses them, and nothing is sent anywhere.
var (
	deviceAddr = netip.MustParsePrefix("192.0.2.1/32")
	route4     = netip.MustParsePrefix("198.51.100.0/24")
	route6     = netip.MustParsePrefix("fd7e:1e00:96::/112")
	serviceIP  = netip.MustParseAddr("198.51.100.7")
)

// run runs a command and returns its combined output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Logf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor runs check until it returns "" (configd and mDNSResponder take
// the files in asynchronously) or the time is up, and returns the last
// complaint.
func waitFor(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		<-tick.C
	}
	t.Errorf("%s: %s", what, last)
}

// TestSmoke is the macOS path of the helper and the daemon, end to end on
// the Mac it runs on: utun, addresses, routes, the daemon's loopback DNS
// server and the resolver files, checked with route, ifconfig, scutil and
// dscacheutil, then removed.
func TestSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: run the test binary with sudo")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// What the helper checks first, on this Mac's real tables.
	routes, err := device.ListRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := device.ListAddrs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d routes, %d interface addresses", len(routes), len(addrs))
	if err := device.CheckConflicts([]netip.Prefix{route4, route6}, routes, "tele0"); err != nil {
		t.Fatalf("the runner routes a documentation range: %v", err)
	}
	if err := device.CheckAddr(deviceAddr, routes, addrs, "tele0"); err != nil {
		t.Fatal(err)
	}

	// The daemon's DNS server on loopback, with a one-Service cluster.
	cluster := func(_ context.Context, q *mdns.Msg) (*mdns.Msg, error) {
		m := new(mdns.Msg)
		m.SetReply(q)
		qq := q.Question[0]
		if strings.EqualFold(qq.Name, "web.demo.svc.cluster.local.") {
			if qq.Qtype == mdns.TypeA {
				rr, _ := mdns.NewRR("web.demo.svc.cluster.local. 5 IN A " + serviceIP.String())
				m.Answer = append(m.Answer, rr)
			}
			return m, nil
		}
		m.Rcode = mdns.RcodeNameError
		return m, nil
	}
	srv := dns.NewServer(dns.Config{ClusterDomain: "cluster.local", Namespace: "demo", Cluster: cluster})
	pc, l, err := dns.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopDNS := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.ServeLoopback(sctx, pc, l) }()
	defer func() { stopDNS(); <-served }()
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)

	// The device, as the helper creates it.
	ula, err := device.ChooseULA(nil, []netip.Prefix{route6})
	if err != nil {
		t.Fatal(err)
	}
	spec := device.Spec{Name: "tele0", MTU: 1500, Addr: deviceAddr, Addr6: ula, Routes: []netip.Prefix{route4, route6}}
	f, err := device.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	utun := f.Name()
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	t.Logf("created %s", utun)

	ifc := run(t, "ifconfig", utun)
	for _, want := range []string{"inet " + deviceAddr.Addr().String(), "inet6 " + ula.Addr().String(), "mtu 1500", "UP"} {
		if !strings.Contains(ifc, want) {
			t.Errorf("ifconfig %s lacks %q:\n%s", utun, want, ifc)
		}
	}
	if out := run(t, "route", "-n", "get", serviceIP.String()); !strings.Contains(out, "interface: "+utun) {
		t.Errorf("route -n get %s does not go to %s:\n%s", serviceIP, utun, out)
	}
	v6 := route6.Addr().Next().String()
	if out := run(t, "route", "-n", "get", "-inet6", v6); !strings.Contains(out, "interface: "+utun) {
		t.Errorf("route -n get -inet6 %s does not go to %s:\n%s", v6, utun, out)
	}

	// The resolver files, as the helper writes them on macOS.
	res := resolver.NewResolverDir(resolver.Options{})
	rc := resolver.Config{
		Nameserver: dns.LoopbackAddr, Port: port,
		Search:  dns.PodSearch("demo", "cluster.local"),
		Domains: []string{"demo", "svc", "cluster.local"},
	}
	if err := res.Apply(ctx, rc); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	restored := false
	defer func() {
		if !restored {
			res.Restore(context.Background())
		}
	}()
	waitFor(t, "scutil --dns", func() string {
		out := run(t, "scutil", "--dns")
		for _, d := range rc.Domains {
			if !hasField(out, "domain", d) {
				return "no resolver for " + d + " in:\n" + out
			}
		}
		if !hasField(out, "nameserver[0]", "127.0.0.1") || !hasField(out, "port", strconv.Itoa(int(port))) {
			return "no resolver at 127.0.0.1 port " + strconv.Itoa(int(port)) + " in:\n" + out
		}
		return ""
	})
	for _, name := range []string{"web.demo", "web.demo.svc", "web.demo.svc.cluster.local"} {
		waitFor(t, "dscacheutil -q host -a name "+name, func() string {
			out := run(t, "dscacheutil", "-q", "host", "-a", "name", name)
			if !strings.Contains(out, "ip_address: "+serviceIP.String()) {
				return "no " + serviceIP.String() + " in:\n" + out
			}
			return ""
		})
	}
	// A single label goes through the search list of the first file; it
	// is reported, not asserted: whether macOS applies it is what the
	// self-check tells a user.
	t.Logf("dscacheutil -q host -a name web:\n%s", run(t, "dscacheutil", "-q", "host", "-a", "name", "web"))

	// A dead daemon: its port refuses, and lookups fail rather than wait.
	stopDNS()
	<-served
	start := time.Now()
	out := run(t, "dscacheutil", "-q", "host", "-a", "name", "other.demo")
	t.Logf("with the daemon's server gone, other.demo took %s: %q", time.Since(start).Round(time.Millisecond), out)

	// Quit: the files go, the device goes with its descriptor.
	if err := res.Restore(ctx); err != nil {
		t.Errorf("Restore: %v", err)
	}
	restored = true
	if ours, err := res.Ours(); err != nil || len(ours) != 0 {
		t.Errorf("after Restore: %v %v", ours, err)
	}
	f.Close()
	closed = true
	waitFor(t, "the utun gone", func() string {
		if out := run(t, "route", "-n", "get", serviceIP.String()); strings.Contains(out, "interface: "+utun) {
			return "route -n get still goes to " + utun + ":\n" + out
		}
		return ""
	})
	waitFor(t, "no resolver of ours", func() string {
		if out := run(t, "scutil", "--dns"); hasField(out, "port", strconv.Itoa(int(port))) {
			return "scutil --dns still lists port " + strconv.Itoa(int(port)) + ":\n" + out
		}
		return ""
	})
}

// hasField reports whether scutil's output has a line "key : value".
func hasField(out, key, value string) bool {
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == key && f[1] == ":" && f[2] == value {
			return true
		}
	}
	return false
}
