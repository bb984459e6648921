package dns

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// route says which backend a question goes to; it keeps their answers
// apart in the cache.
type route int

const (
	// routeUpstream asks the laptop's resolver.
	routeUpstream route = iota
	// routeCluster asks the cluster's DNS.
	routeCluster
)

func (r route) String() string {
	if r == routeCluster {
		return "cluster"
	}
	return "upstream"
}

// plan returns the names to ask for a question name, in order: those a pod
// of the connected namespace would try, from its resolv.conf ("search
// NS.svc.DOMAIN svc.DOMAIN DOMAIN", "options ndots:5"; see Candidates), so
// that names resolve the same on the laptop whatever the OS resolver did
// with its own search list: split-DNS systems (systemd-resolved with
// routing domains, macOS /etc/resolver files, Windows NRPT rules) search
// single labels at most, and send dotted names as they are. Reverse names
// of the cluster's addresses are the cluster's, other reverse names the
// laptop's.
func (s *Server) plan(qname string) []Candidate {
	name := strings.ToLower(dns.Fqdn(qname))
	if s.domain != "" && strings.HasSuffix(name, ".arpa.") {
		if a, ok := reverseAddr(name); ok {
			for _, p := range s.reverse {
				if p.Contains(a) {
					return []Candidate{{Name: name, Cluster: true}}
				}
			}
		}
	}
	return Candidates(name, s.domain, s.search, PodNdots)
}

// reverseAddr parses a complete reverse-lookup name (4 labels under
// in-addr.arpa, 32 nibbles under ip6.arpa) into the address it names.
// Partial names (zone apexes such as 10.in-addr.arpa.) are not addresses.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			// labels[0] is the lowest nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(n) << 4
			} else {
				b[pos/2] |= byte(n)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
