package device

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPlanRoutes(t *testing.T) {
	up := darwinRTFUp | darwinRTFStatic
	tests := []struct {
		name    string
		typ     int
		idx     int
		routes  []netip.Prefix
		want    []routeOp
		wantErr string
	}{
		{"v4 networks", darwinRTMAdd, 17, []netip.Prefix{pfx("10.96.0.0/12"), pfx("172.20.0.0/16")}, []routeOp{
			{Type: darwinRTMAdd, Flags: up, Seq: 1, Dst: addr("10.96.0.0"), Mask: addr("255.240.0.0"), IfIndex: 17, IfName: "utun4"},
			{Type: darwinRTMAdd, Flags: up, Seq: 2, Dst: addr("172.20.0.0"), Mask: addr("255.255.0.0"), IfIndex: 17, IfName: "utun4"},
		}, ""},
		{"v6 network", darwinRTMAdd, 17, []netip.Prefix{pfx("fd00:96::/108")}, []routeOp{
			{Type: darwinRTMAdd, Flags: up, Seq: 1, Dst: addr("fd00:96::"), Mask: addr("ffff:ffff:ffff:ffff:ffff:ffff:fff0:0"), IfIndex: 17, IfName: "utun4"},
		}, ""},
		{"host routes have no netmask", darwinRTMDelete, 17, []netip.Prefix{pfx("10.1.2.3/32"), pfx("fd00::5/128")}, []routeOp{
			{Type: darwinRTMDelete, Flags: up | darwinRTFHost, Seq: 1, Dst: addr("10.1.2.3"), IfIndex: 17, IfName: "utun4"},
			{Type: darwinRTMDelete, Flags: up | darwinRTFHost, Seq: 2, Dst: addr("fd00::5"), IfIndex: 17, IfName: "utun4"},
		}, ""},
		{"no routes", darwinRTMAdd, 17, nil, []routeOp{}, ""},
		{"never RTF_GATEWAY", darwinRTMAdd, 3, []netip.Prefix{pfx("10.0.0.0/8")}, []routeOp{
			{Type: darwinRTMAdd, Flags: up, Seq: 1, Dst: addr("10.0.0.0"), Mask: addr("255.0.0.0"), IfIndex: 3, IfName: "utun4"},
		}, ""},
		{"RTM_GET refused", 4, 17, nil, nil, "neither RTM_ADD nor RTM_DELETE"},
		{"no index", darwinRTMAdd, 0, nil, nil, "no index"},
		{"host bits", darwinRTMAdd, 17, []netip.Prefix{netip.PrefixFrom(addr("10.96.0.1"), 12)}, nil, "not a canonical prefix"},
		{"mapped", darwinRTMAdd, 17, []netip.Prefix{pfx("::ffff:10.0.0.0/104")}, nil, "not a canonical prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planRoutes(tt.typ, tt.idx, "utun4", tt.routes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planRoutes() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("planRoutes() =\n%+v\nwant\n%+v", got, tt.want)
			}
			for _, op := range got {
				if op.Flags&darwinRTFGateway != 0 {
					t.Errorf("%+v has RTF_GATEWAY: a utun route is an interface route", op)
				}
				if p := opPrefixPure(op); !containsPrefix(tt.routes, p) {
					t.Errorf("op %+v routes %s, not one of %v", op, p, tt.routes)
				}
			}
		})
	}
}

// opPrefixPure recovers the prefix of an op, as device_darwin.go's opPrefix.
func opPrefixPure(op routeOp) netip.Prefix {
	bits := op.Dst.BitLen()
	if op.Mask.IsValid() {
		bits, _ = maskBits(op.Mask)
	}
	return netip.PrefixFrom(op.Dst, bits)
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func TestRouteFromRIB(t *testing.T) {
	up := darwinRTFUp
	none := netip.Addr{}
	tests := []struct {
		name   string
		dst    netip.Addr
		mask   netip.Addr
		flags  int
		dev    string
		want   Route
		wantOK bool
	}{
		{"network", addr("192.168.1.0"), addr("255.255.255.0"), up, "en0", Route{pfx("192.168.1.0/24"), "en0"}, true},
		{"gateway route", addr("10.0.0.0"), addr("255.0.0.0"), up | darwinRTFGateway | darwinRTFStatic, "utun3", Route{pfx("10.0.0.0/8"), "utun3"}, true},
		{"host route", addr("100.64.0.1"), none, up | darwinRTFHost, "utun5", Route{pfx("100.64.0.1/32"), "utun5"}, true},
		{"v6 network", addr("fd7a:115c:a1e0::"), addr("ffff:ffff:ffff::"), up, "utun2", Route{pfx("fd7a:115c:a1e0::/48"), "utun2"}, true},
		{"v6 link-local with zone", addr("fe80::%en0"), addr("ffff:ffff:ffff:ffff::"), up, "en0", Route{pfx("fe80::/64"), "en0"}, true},
		{"default (ignored later by CheckConflicts)", addr("0.0.0.0"), addr("0.0.0.0"), up | darwinRTFGateway, "en0", Route{pfx("0.0.0.0/0"), "en0"}, true},
		{"host bits masked", addr("192.168.1.7"), addr("255.255.255.0"), up, "en0", Route{pfx("192.168.1.0/24"), "en0"}, true},
		{"down", addr("192.168.1.0"), addr("255.255.255.0"), 0, "en0", Route{}, false},
		{"ARP entry", addr("192.168.1.1"), none, up | darwinRTFHost | darwinRTFLLInfo, "en0", Route{}, false},
		{"cloned", addr("192.168.1.9"), none, up | darwinRTFHost | darwinRTFWasCloned, "en0", Route{}, false},
		{"scoped default", addr("0.0.0.0"), addr("0.0.0.0"), up | darwinRTFIfscope, "en0", Route{}, false},
		{"no netmask, not a host", addr("192.168.1.0"), none, up, "en0", Route{}, false},
		{"mask of the other family", addr("fd00::"), addr("255.255.0.0"), up, "en0", Route{}, false},
		{"non-contiguous mask", addr("10.0.0.0"), addr("255.0.255.0"), up, "en0", Route{}, false},
		{"no destination (AF_LINK)", none, none, up, "en0", Route{}, false},
		{"unknown interface", addr("10.0.0.0"), addr("255.0.0.0"), up, "", Route{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := routeFromRIB(tt.dst, tt.mask, tt.flags, tt.dev)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("routeFromRIB() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// A route a darwin host lists conflicts with a cluster CIDR the same way
// as on Linux.
func TestRouteFromRIBConflicts(t *testing.T) {
	r, ok := routeFromRIB(addr("10.96.0.0"), addr("255.255.0.0"), darwinRTFUp, "utun3")
	if !ok {
		t.Fatal("route skipped")
	}
	err := CheckConflicts([]netip.Prefix{pfx("10.96.0.0/12")}, []Route{r}, "tele0")
	if err == nil || !strings.Contains(err.Error(), "--never-proxy 10.96.0.0/16") {
		t.Errorf("CheckConflicts = %v, want a conflict with 10.96.0.0/16 on utun3", err)
	}
}
