package namecheck

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestForms(t *testing.T) {
	got := Forms("kubectl-tele-manager", "demo", "demo", "cluster.local.")
	want := []Form{
		{"svc", "kubectl-tele-manager"},
		{"svc.ns", "kubectl-tele-manager.demo"},
		{"svc.ns.svc", "kubectl-tele-manager.demo.svc"},
		{"fqdn", "kubectl-tele-manager.demo.svc.cluster.local"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Forms = %v, want %v", got, want)
	}
	// The manager in another namespace: its single label is not ours.
	if got := Forms("m", "ops", "demo", ""); !slices.Equal(got, []Form{{"svc.ns", "m.ops"}, {"svc.ns.svc", "m.ops.svc"}}) {
		t.Errorf("Forms in another namespace = %v", got)
	}
}

func TestRun(t *testing.T) {
	ip := netip.MustParseAddr("10.96.3.4")
	setup := Setup{Mode: "systemd-resolved", Device: "tele0", Nameserver: "10.96.0.10", Namespace: "demo", Domain: "cluster.local",
		Routing: []string{"svc", "cluster.local"}}
	lookup := func(_ context.Context, name string) ([]netip.Addr, error) {
		switch name {
		case "m":
			return []netip.Addr{netip.AddrFrom16(ip.As16())}, nil // ::ffff:10.96.3.4 from getaddrinfo
		case "m.demo":
			return nil, errors.New("not found")
		case "m.demo.svc":
			return []netip.Addr{netip.MustParseAddr("192.0.2.9")}, nil
		}
		return []netip.Addr{ip}, nil
	}
	got := Run(context.Background(), lookup, Forms("m", "demo", "demo", "cluster.local"), []netip.Addr{ip}, setup)
	ok := map[string]bool{}
	for _, r := range got {
		ok[r.Form.Form] = r.OK
		if r.OK != (r.Hint == "") {
			t.Errorf("%s: ok %v with hint %q", r.Form.Form, r.OK, r.Hint)
		}
	}
	if !ok["svc"] || ok["svc.ns"] || ok["svc.ns.svc"] || !ok["fqdn"] {
		t.Errorf("verdicts %v, want svc and fqdn only", ok)
	}
	if !strings.Contains(got[1].Hint, "~demo") {
		t.Errorf("svc.ns hint %q does not name the routing domain ~demo", got[1].Hint)
	}
	if !strings.Contains(got[2].Detail, "another DNS server") {
		t.Errorf("svc.ns.svc detail %q", got[2].Detail)
	}
}

func TestHint(t *testing.T) {
	s := Setup{Device: "tele0", Nameserver: "10.96.0.10", Namespace: "dev", Domain: "cluster.local", Public: []string{"dev"}}
	tests := []struct {
		mode, form, want string
	}{
		{"systemd-resolved", "svc.ns", "public top-level domain"},
		{"systemd-resolved", "svc.ns.svc", "~svc"},
		{"systemd-resolved", "svc", "dev.svc.cluster.local"},
		{"systemd-resolved", "fqdn", "resolvectl status tele0"},
		{"resolv.conf", "svc.ns", "nameserver 10.96.0.10"},
		{"macos-resolver", "svc.ns", "no /etc/resolver file"},
		{"macos-resolver", "svc.ns.svc", "resolver for svc"},
		{"other", "fqdn", "connect again"},
	}
	for _, tt := range tests {
		if got := Hint(tt.form, Setup{Mode: tt.mode, Device: s.Device, Nameserver: s.Nameserver, Namespace: s.Namespace, Domain: s.Domain, Public: s.Public}); !strings.Contains(got, tt.want) {
			t.Errorf("Hint(%s, %s) = %q, want it to contain %q", tt.mode, tt.form, got, tt.want)
		}
	}
}

func TestParseGetent(t *testing.T) {
	out := "10.96.3.4       STREAM m.demo.svc.cluster.local\n10.96.3.4       DGRAM  \n10.96.3.4       RAW    \nfd00::1 STREAM\n"
	got := parseGetent([]byte(out))
	if !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.96.3.4"), netip.MustParseAddr("fd00::1")}) {
		t.Errorf("parseGetent = %v", got)
	}
}
