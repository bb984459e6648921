package device

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNeedsAddr6(t *testing.T) {
	v4 := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("10.244.0.0/24")}
	dual := append(append([]netip.Prefix(nil), v4...), netip.MustParsePrefix("fd00:10:96::/112"))
	for _, tt := range []struct {
		name   string
		goos   string
		addr   netip.Prefix
		routes []netip.Prefix
		want   bool
	}{
		{"darwin, dual-stack cluster", "darwin", DefaultAddr, dual, true},
		{"darwin, IPv4 only", "darwin", DefaultAddr, v4, false},
		{"darwin, no routes", "darwin", DefaultAddr, nil, false},
		{"darwin, the address is IPv6 already", "darwin", netip.MustParsePrefix("fd00::1/128"), dual, false},
		{"linux routes IPv6 without one", "linux", DefaultAddr, dual, false},
		{"windows", "windows", DefaultAddr, dual, false},
	} {
		if got := NeedsAddr6(tt.goos, tt.addr, tt.routes); got != tt.want {
			t.Errorf("%s: NeedsAddr6 = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestChooseULA(t *testing.T) {
	// The layout: fd, 40 random bits, subnet 0, interface ::1, a /128.
	r := bytes.NewReader([]byte{0x12, 0x34, 0x56, 0x78, 0x9a})
	p, err := ChooseULA(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("fd12:3456:789a::1/128"); p != want {
		t.Errorf("ChooseULA = %s, want %s", p, want)
	}
	if err := ValidateAddr6(p); err != nil {
		t.Errorf("ChooseULA's choice does not validate: %v", err)
	}

	// Random: two sessions choose apart (2^-40 to fail), and every choice
	// validates.
	seen := map[netip.Prefix]bool{}
	for range 100 {
		p, err := ChooseULA(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateAddr6(p); err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("ChooseULA chose %s twice", p)
		}
		seen[p] = true
	}

	// One inside the session's routes is drawn again.
	avoid := []netip.Prefix{netip.MustParsePrefix("fd12::/16")}
	r = bytes.NewReader([]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0x99, 0x00, 0x00, 0x00, 0x01})
	if p, err := ChooseULA(r, avoid); err != nil || p != netip.MustParsePrefix("fd99:0:1::1/128") {
		t.Errorf("ChooseULA avoiding fd12::/16 = %s, %v; want the second draw fd99:0:1::1/128", p, err)
	}
	// All of fd00::/8 routed: no choice, and an error that says what to do.
	if _, err := ChooseULA(nil, []netip.Prefix{ulaRange}); err == nil || !strings.Contains(err.Error(), "route less of fd00::/8") {
		t.Errorf("ChooseULA with fd00::/8 routed: %v", err)
	}
	// A short read is an error, not a weak address.
	if _, err := ChooseULA(bytes.NewReader([]byte{1, 2}), nil); err == nil {
		t.Error("ChooseULA with 2 random bytes succeeded")
	}
}

func TestValidateAddr6(t *testing.T) {
	for _, s := range []string{"fd00::1/128", "fdff:ffff:ffff::1/128"} {
		if err := ValidateAddr6(netip.MustParsePrefix(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"fc00::1/128", "2001:db8::1/128", "fd00::/64", "fd00::1/127", "198.18.0.1/32", "::ffff:198.18.0.1/128", "fe80::1/128"} {
		if err := ValidateAddr6(netip.MustParsePrefix(s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	if err := ValidateAddr6(netip.Prefix{}); err == nil {
		t.Error("the zero prefix accepted")
	}
}

func TestCheckAddr(t *testing.T) {
	addr := DefaultAddr
	for _, tt := range []struct {
		name    string
		routes  []Route
		addrs   []IfAddr
		wantErr string
	}{
		{"a clean laptop", []Route{
			{netip.MustParsePrefix("0.0.0.0/0"), "en0"},
			{netip.MustParsePrefix("192.168.1.0/24"), "en0"},
		}, []IfAddr{{netip.MustParsePrefix("192.168.1.20/24"), "en0"}, {netip.MustParsePrefix("127.0.0.1/8"), "lo0"}}, ""},
		{"Clash's TUN: the fake-IP range routed to a utun", []Route{
			{netip.MustParsePrefix("0.0.0.0/0"), "en0"},
			{netip.MustParsePrefix("198.18.0.0/15"), "utun3"},
		}, nil, "the local route 198.18.0.0/15 on utun3 covers it (the fake-IP range of a proxy such as Surge, Clash or sing-box)"},
		{"another interface has the address", nil,
			[]IfAddr{{netip.MustParsePrefix("198.18.0.1/16"), "utun5"}}, "interface utun5 has that address"},
		{"a host route elsewhere", []Route{{netip.MustParsePrefix("198.18.0.1/32"), "utun7"}}, nil, "the local route 198.18.0.1/32 on utun7"},
		{"our own device left by a crash", []Route{{netip.MustParsePrefix("198.18.0.1/32"), "tele0"}},
			[]IfAddr{{netip.MustParsePrefix("198.18.0.1/32"), "tele0"}}, ""},
		{"a default route covers everything and is not a conflict", []Route{{netip.MustParsePrefix("0.0.0.0/0"), "utun3"}}, nil, ""},
		{"a neighbouring range", []Route{{netip.MustParsePrefix("198.20.0.0/16"), "en1"}}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAddr(addr, tt.routes, tt.addrs, "tele0")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *AddrConflictError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--device-addr") {
				t.Fatalf("CheckAddr = %v, want an AddrConflictError saying %q and naming --device-addr", err, tt.wantErr)
			}
		})
	}
	// The suggestion is outside the route that conflicted.
	err := CheckAddr(netip.MustParsePrefix("100.100.0.1/32"), []Route{{netip.MustParsePrefix("100.64.0.0/10"), "utun2"}}, nil, "tele0")
	if err == nil || !strings.Contains(err.Error(), "--device-addr 192.0.2.254") {
		t.Errorf("CheckAddr in Tailscale's CGNAT range: %v, want it to suggest 192.0.2.254", err)
	}
}
