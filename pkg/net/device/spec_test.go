package device

import (
	"net/netip"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func validSpec() Spec {
	return Spec{
		Name:   "tele0",
		MTU:    1400,
		Addr:   pfx("198.18.0.1/32"),
		Routes: []netip.Prefix{pfx("10.96.0.0/12"), pfx("172.20.0.0/16")},
	}
}

func TestValidateSpec(t *testing.T) {
	manyRoutes := make([]netip.Prefix, MaxRoutes+1)
	for i := range manyRoutes {
		manyRoutes[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)
	}
	tests := []struct {
		name    string
		mutate  func(*Spec)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*Spec) {}, ""},
		{"three digit name", func(s *Spec) { s.Name = "tele123" }, ""},
		{"no routes", func(s *Spec) { s.Routes = nil }, ""},
		{"max routes", func(s *Spec) { s.Routes = manyRoutes[:MaxRoutes] }, ""},
		{"v6 addr and route", func(s *Spec) {
			s.Addr = pfx("fd00:1::1/128")
			s.Routes = []netip.Prefix{pfx("fd00:96::/108")}
		}, ""},
		{"min MTU", func(s *Spec) { s.MTU = 576 }, ""},
		{"max MTU", func(s *Spec) { s.MTU = 9000 }, ""},

		{"empty name", func(s *Spec) { s.Name = "" }, "device name"},
		{"foreign name", func(s *Spec) { s.Name = "eth0" }, "device name"},
		{"four digit name", func(s *Spec) { s.Name = "tele1234" }, "device name"},
		{"name with suffix", func(s *Spec) { s.Name = "tele0\n" }, "device name"},
		{"name with slash", func(s *Spec) { s.Name = "tele0/../eth0" }, "device name"},
		{"MTU too small", func(s *Spec) { s.MTU = 575 }, "MTU 575"},
		{"MTU too big", func(s *Spec) { s.MTU = 65536 }, "MTU 65536"},
		{"MTU too small for v6", func(s *Spec) {
			s.MTU = 1279
			s.Routes = append(s.Routes, pfx("fd00:96::/108"))
		}, "IPv6 needs"},
		{"addr missing", func(s *Spec) { s.Addr = netip.Prefix{} }, "address invalid"},
		{"addr not host", func(s *Spec) { s.Addr = pfx("198.18.0.0/24") }, "single host"},
		{"addr loopback", func(s *Spec) { s.Addr = pfx("127.0.0.2/32") }, "loopback"},
		{"addr mapped", func(s *Spec) { s.Addr = pfx("::ffff:198.18.0.1/128") }, "IPv4-mapped"},
		{"addr link-local v6", func(s *Spec) { s.Addr = pfx("fe80::1/128") }, "link-local"},
		{"too many routes", func(s *Spec) { s.Routes = manyRoutes }, "at most 64"},
		{"duplicate route", func(s *Spec) { s.Routes = append(s.Routes, pfx("10.96.0.0/12")) }, "listed twice"},
		{"default v4", func(s *Spec) { s.Routes = []netip.Prefix{pfx("0.0.0.0/0")} }, "default route"},
		{"default v6", func(s *Spec) { s.Routes = []netip.Prefix{pfx("::/0")} }, "default route"},
		{"half the internet", func(s *Spec) { s.Routes = []netip.Prefix{pfx("0.0.0.0/1")} }, "too wide"},
		{"v4 /7", func(s *Spec) { s.Routes = []netip.Prefix{pfx("10.0.0.0/7")} }, "too wide"},
		{"v6 /15", func(s *Spec) { s.Routes = []netip.Prefix{pfx("fd00::/15")} }, "too wide"},
		{"host bits", func(s *Spec) { s.Routes = []netip.Prefix{pfx("10.96.0.1/12")} }, "host bits"},
		{"loopback route", func(s *Spec) { s.Routes = []netip.Prefix{pfx("127.0.0.0/8")} }, "loopback"},
		{"inside loopback", func(s *Spec) { s.Routes = []netip.Prefix{pfx("127.1.0.0/16")} }, "loopback"},
		{"link-local v4", func(s *Spec) { s.Routes = []netip.Prefix{pfx("169.254.0.0/16")} }, "link-local"},
		{"multicast v4", func(s *Spec) { s.Routes = []netip.Prefix{pfx("239.0.0.0/8")} }, "multicast"},
		{"broadcast", func(s *Spec) { s.Routes = []netip.Prefix{pfx("255.255.255.255/32")} }, "broadcast"},
		{"this network", func(s *Spec) { s.Routes = []netip.Prefix{pfx("0.0.0.0/8")} }, "this network"},
		{"link-local v6", func(s *Spec) { s.Routes = []netip.Prefix{pfx("fe80::/64")} }, "link-local"},
		{"multicast v6", func(s *Spec) { s.Routes = []netip.Prefix{pfx("ff02::/16")} }, "multicast"},
		{"covers v6 unspecified", func(s *Spec) { s.Routes = []netip.Prefix{pfx("::/16")} }, "unspecified"},
		{"mapped route", func(s *Spec) { s.Routes = []netip.Prefix{pfx("::ffff:10.0.0.0/104")} }, "IPv4-mapped"},
		{"invalid route", func(s *Spec) { s.Routes = []netip.Prefix{{}} }, "invalid prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mutate(&s)
			err := ValidateSpec(s)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateSpec(%+v) = %v, want nil", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateSpec(%+v) = %v, want error containing %q", s, err, tt.wantErr)
			}
		})
	}
}
