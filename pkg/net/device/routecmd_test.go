package device

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func joinCmds(cmds [][]string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = strings.Join(c, " ")
	}
	return out
}

func TestDarwinCommands(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"v4", validSpec(), []string{
			"ifconfig utun4 inet 198.18.0.1 198.18.0.1 netmask 255.255.255.255 mtu 1400 up",
			"route -n add -inet -net 10.96.0.0/12 -interface utun4",
			"route -n add -inet -net 172.20.0.0/16 -interface utun4",
		}},
		{"v6", Spec{Name: "tele0", MTU: 1280, Addr: pfx("fd00:1::1/128"), Routes: []netip.Prefix{pfx("fd00:96::/108")}}, []string{
			"ifconfig utun4 inet6 fd00:1::1 prefixlen 128",
			"ifconfig utun4 mtu 1280 up",
			"route -n add -inet6 -net fd00:96::/108 -interface utun4",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinCmds(DarwinCommands("utun4", tt.spec)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DarwinCommands() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestWindowsCommands(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"v4", validSpec(), []string{
			"netsh interface ipv4 set subinterface tele0 mtu=1400 store=active",
			"netsh interface ipv4 add address name=tele0 address=198.18.0.1 mask=255.255.255.255 store=active",
			"netsh interface ipv4 add route prefix=10.96.0.0/12 interface=tele0 store=active",
			"netsh interface ipv4 add route prefix=172.20.0.0/16 interface=tele0 store=active",
		}},
		{"v4 address with a v6 route", Spec{Name: "tele2", MTU: 1500, Addr: pfx("198.18.0.1/32"), Routes: []netip.Prefix{pfx("fd00:96::/108")}}, []string{
			"netsh interface ipv4 set subinterface tele2 mtu=1500 store=active",
			"netsh interface ipv6 set subinterface tele2 mtu=1500 store=active",
			"netsh interface ipv4 add address name=tele2 address=198.18.0.1 mask=255.255.255.255 store=active",
			"netsh interface ipv6 add route prefix=fd00:96::/108 interface=tele2 store=active",
		}},
		{"v6", Spec{Name: "tele0", MTU: 1280, Addr: pfx("fd00:1::1/128")}, []string{
			"netsh interface ipv6 set subinterface tele0 mtu=1280 store=active",
			"netsh interface ipv6 add address interface=tele0 address=fd00:1::1/128 store=active",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinCmds(WindowsCommands(tt.spec)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WindowsCommands() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
