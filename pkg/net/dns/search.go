package dns

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// PodNdots is the ndots option the kubelet writes into every pod's
// resolv.conf (ClusterFirst DNS policy): a name with fewer dots is tried
// with the search list first, and as it is last.
const PodNdots = 5

// PodSearch is the search list the kubelet gives a pod of namespace ns in a
// cluster whose DNS domain is domain: "ns.svc.domain svc.domain domain",
// without the first entry when ns is empty. Names are lower case, without
// the trailing dot.
func PodSearch(ns, domain string) []string {
	ns = strings.ToLower(strings.Trim(ns, "."))
	domain = strings.ToLower(strings.Trim(domain, "."))
	if domain == "" {
		return nil
	}
	var out []string
	if ns != "" {
		out = append(out, ns+".svc."+domain)
	}
	return append(out, "svc."+domain, domain)
}

// Candidate is one name to ask, in the order a pod's resolver asks them.
type Candidate struct {
	// Name is lower case and fully qualified.
	Name string
	// Cluster says the name is under the cluster's domain and is asked of
	// the cluster's DNS; otherwise of the laptop's own resolver, as CoreDNS
	// would forward it from a pod.
	Cluster bool
}

// Candidates returns the names to try for qname, in order, the way a pod's
// resolver with "search <search>" and "options ndots:<ndots>" tries the name
// typed into it: a name with fewer than ndots dots is tried with each search
// domain appended first and as it is last; a name with at least ndots dots
// as it is first. The first candidate whose name exists answers; see
// Server.Answer.
//
// A query on the wire is always fully qualified, so qname is taken as the
// name a program asked for, before any search domain. When the OS resolver
// has already appended one of ours (web-0.web.svc.cluster.local), the name
// is under domain and is asked as it is, once: its own expansions
// (web-0.web.svc.cluster.local.ns.svc.cluster.local, ...) are names no
// cluster DNS has, and the OS resolver goes on to its next search domain
// when we answer NXDOMAIN, as a pod's would.
//
// domain is the cluster's DNS domain; when empty, nothing is the cluster's
// and qname is its only candidate. The root, "localhost" (RFC 6761) and
// reverse-lookup names (.arpa) are asked as they are, never searched: the
// server decides the reverse names of cluster addresses before this.
// Expanded names longer than a DNS name may be are left out.
func Candidates(qname, domain string, search []string, ndots int) []Candidate {
	name := strings.ToLower(dns.Fqdn(qname))
	domain = strings.ToLower(strings.Trim(domain, "."))
	if domain != "" {
		domain += "."
	}
	asIs := Candidate{Name: name, Cluster: domain != "" && dns.IsSubDomain(domain, name)}
	if domain == "" || asIs.Cluster || name == "." || name == "localhost." || strings.HasSuffix(name, ".arpa.") {
		return []Candidate{asIs}
	}
	var out []Candidate
	dots := dns.CountLabel(name) - 1
	if dots >= ndots {
		out = append(out, asIs)
	}
	for _, s := range search {
		s = strings.ToLower(strings.Trim(s, "."))
		if s == "" {
			continue
		}
		n := name + s + "."
		if _, ok := dns.IsDomainName(n); !ok || len(n) > 254 || slices.ContainsFunc(out, func(c Candidate) bool { return c.Name == n }) {
			continue // too long (253 plus the root's dot), or a repeated search domain
		}
		out = append(out, Candidate{Name: n, Cluster: dns.IsSubDomain(domain, n)})
	}
	if dots < ndots {
		out = append(out, asIs)
	}
	return out
}
