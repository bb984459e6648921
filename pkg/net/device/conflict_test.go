package device

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckConflicts(t *testing.T) {
	host := []Route{
		{pfx("0.0.0.0/0"), "eth0"},
		{pfx("::/0"), "eth0"},
		{pfx("192.168.1.0/24"), "eth0"},
		{pfx("10.200.0.0/16"), "docker0"},
		{pfx("fd00:aa::/64"), "wg0"},
		{pfx("10.96.0.0/12"), "tele0"},
	}
	tests := []struct {
		name   string
		routes []netip.Prefix
		own    string
		want   []string // one substring per expected conflict
	}{
		{"disjoint", []netip.Prefix{pfx("172.20.0.0/16"), pfx("fd00:bb::/64")}, "tele0", nil},
		{"default routes ignored", []netip.Prefix{pfx("100.64.0.0/10")}, "tele0", nil},
		{"own device ignored", []netip.Prefix{pfx("10.96.0.0/12")}, "tele0", nil},
		{"cluster wider than local", []netip.Prefix{pfx("10.128.0.0/9")}, "tele0", []string{
			"cluster subnet 10.128.0.0/9 overlaps the local route 10.200.0.0/16 on device docker0: rerun with --never-proxy 10.200.0.0/16 to keep that range on docker0, or with --allow-conflicting-subnets",
		}},
		{"cluster inside local", []netip.Prefix{pfx("192.168.1.128/25")}, "tele0", []string{
			"192.168.1.128/25 overlaps the local route 192.168.1.0/24 on device eth0: rerun with --never-proxy 192.168.1.128/25",
		}},
		{"v6", []netip.Prefix{pfx("fd00:aa::/48")}, "tele0", []string{"on device wg0"}},
		{"other session's device", []netip.Prefix{pfx("10.96.0.0/16")}, "tele1", []string{"10.96.0.0/12 on device tele0"}},
		{"several", []netip.Prefix{pfx("10.0.0.0/8"), pfx("192.168.0.0/16")}, "tele1", []string{"docker0", "tele0", "eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConflicts(tt.routes, host, tt.own)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckConflicts() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckConflicts() = nil, want %d conflicts", len(tt.want))
			}
			if _, ok := errors.AsType[*ConflictError](err); !ok {
				t.Errorf("error %v is not a *ConflictError", err)
			}
			var n int
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				n = len(j.Unwrap())
			}
			if n != len(tt.want) {
				t.Errorf("got %d conflicts, want %d: %v", n, len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
