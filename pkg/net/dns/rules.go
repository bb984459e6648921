package dns

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// route says where a question goes.
type route int

const (
	// routeUpstream sends the question, unchanged, to the laptop's resolver.
	routeUpstream route = iota
	// routeCluster sends the question, unchanged, to the cluster's DNS.
	routeCluster
	// routeRewrite asks the cluster for a longer name that a pod's search
	// list would have tried, and falls back to Upstream with the original
	// name when the cluster does not know it.
	routeRewrite
)

func (r route) String() string {
	switch r {
	case routeCluster:
		return "cluster"
	case routeRewrite:
		return "rewrite"
	default:
		return "upstream"
	}
}

// decision is where a question goes and, for routeRewrite, the name to ask
// the cluster for (lower-case, fully qualified).
type decision struct {
	route route
	name  string
}

// decide applies the name rules to a question name. The rules mirror what a
// pod of the connected namespace would get from its resolv.conf
// ("search NS.svc.DOMAIN svc.DOMAIN DOMAIN"), so that names resolve the same
// on the laptop even when the OS resolver ignores the search list (split-DNS
// systems such as systemd-resolved with routing domains, macOS
// /etc/resolver files, Windows NRPT rules).
func (s *Server) decide(qname string) decision {
	name := strings.ToLower(dns.Fqdn(qname))
	if s.domain == "" || name == "." {
		return decision{route: routeUpstream}
	}
	if dns.IsSubDomain(s.domain, name) {
		return decision{route: routeCluster, name: name}
	}
	if strings.HasSuffix(name, ".arpa.") {
		if a, ok := reverseAddr(name); ok {
			for _, p := range s.reverse {
				if p.Contains(a) {
					return decision{route: routeCluster, name: name}
				}
			}
		}
		return decision{route: routeUpstream}
	}
	labels := dns.SplitDomainName(name)
	switch {
	case len(labels) == 1:
		// "localhost" is never a Service; leave it to the OS (RFC 6761).
		if s.namespace == "" || name == "localhost." {
			return decision{route: routeUpstream}
		}
		return decision{route: routeRewrite, name: name + s.namespace + ".svc." + s.domain}
	case len(labels) == 2:
		// svc.ns: what "search svc.DOMAIN" gives a pod.
		return decision{route: routeRewrite, name: name + "svc." + s.domain}
	case labels[len(labels)-1] == "svc":
		// svc.ns.svc (and pod.svc.ns.svc): what "search DOMAIN" gives a
		// pod. "svc" is not a public top-level domain, so nothing is lost.
		return decision{route: routeRewrite, name: name + s.domain}
	}
	return decision{route: routeUpstream}
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
