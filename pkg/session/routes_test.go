package session

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestPlanRoutes: the device routes the cluster's CIDRs with --also-proxy
// and without --never-proxy, merged, and always its DNS server.
func TestPlanRoutes(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		info        *teleproto.ClusterInfo
		also, never []netip.Prefix
		want        []string
		dns         string
		err         string
	}{
		{
			name: "service and pod CIDRs",
			info: &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.0.0/16"}, PodCidrs: []string{"10.244.0.0/16"}, DnsServer: "10.96.0.10:53"},
			want: []string{"10.96.0.0/16", "10.244.0.0/16"}, dns: "10.96.0.10",
		},
		{
			name: "unmasked and adjacent CIDRs merge",
			info: &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.1.7/24"}, PodCidrs: []string{"10.96.0.0/24"}, DnsServer: "10.96.0.10"},
			want: []string{"10.96.0.0/23"}, dns: "10.96.0.10",
		},
		{
			name: "--also-proxy adds, --never-proxy carves out",
			info: &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.0.0/16"}, DnsServer: "10.96.0.10:53"},
			also: pfx("172.20.0.0/24"), never: pfx("10.96.128.0/17"),
			want: []string{"10.96.0.0/17", "172.20.0.0/24"}, dns: "10.96.0.10",
		},
		{
			name:  "the DNS server is routed even when carved out",
			info:  &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.0.0/16"}, DnsServer: "10.96.0.10:53"},
			never: pfx("10.96.0.0/24"),
			want:  []string{"10.96.0.10/32", "10.96.1.0/24", "10.96.2.0/23", "10.96.4.0/22", "10.96.8.0/21", "10.96.16.0/20", "10.96.32.0/19", "10.96.64.0/18", "10.96.128.0/17"},
			dns:   "10.96.0.10",
		},
		{
			name: "IPv6",
			info: &teleproto.ClusterInfo{ServiceCidrs: []string{"fd00:10:96::/112"}, DnsServer: "[fd00:10:96::a]:53"},
			want: []string{"fd00:10:96::/112"}, dns: "fd00:10:96::a",
		},
		{name: "a bad CIDR", info: &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.0.0/33"}, DnsServer: "10.96.0.10"}, err: `manager sent CIDR "10.96.0.0/33"`},
		{name: "a bad DNS server", info: &teleproto.ClusterInfo{ServiceCidrs: []string{"10.96.0.0/16"}, DnsServer: "dns"}, err: `manager sent DNS server "dns"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routes, dns, err := planRoutes(tc.info, tc.also, tc.never)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := prefixStrings(routes); !slices.Equal(got, tc.want) || dns.String() != tc.dns {
				t.Errorf("routes %v dns %s, want %v %s", got, dns, tc.want, tc.dns)
			}
		})
	}
}
