package resolver

import (
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// MaxRoutingDomains bounds the routing domains of one session: the helper
// refuses more, and RoutingDomains keeps the first ones (see its order).
// Each is a line in systemd-resolved's link state or a file in
// /etc/resolver; a cluster with more namespaces than this is rare, and its
// other namespaces still resolve as NAME.NS.svc.
const MaxRoutingDomains = 256

// RoutingSet is the set of routing domains a session asks of a split-DNS
// resolver (systemd-resolved's "~domain", macOS /etc/resolver files,
// Windows NRPT rules): names under them go to our nameserver, every other
// name where it went before.
type RoutingSet struct {
	// Domains, most important first: svc, the cluster domain, pod, the
	// connected namespace, its subdomains, then the other namespaces.
	Domains []string
	// Public are namespaces and subdomains left out because their name is
	// a public suffix (a top-level domain such as dev or app): routing it
	// to the cluster would capture every name of that TLD. NAME.NS of such
	// a namespace goes to the laptop's own DNS; NAME.NS.svc still resolves.
	Public []string
	// Dropped counts namespaces left out over MaxRoutingDomains.
	Dropped int
}

// RoutingDomains decides the routing domains for a session connected to
// namespace ns of a cluster whose DNS domain is clusterDomain: "svc"
// (NAME.NS.svc), the cluster domain (FQDNs), "pod" (IP.NS.pod), the
// connected namespace and the other namespaces the user can see (listed with
// their own credentials, or named in the config: NAME.NS,
// kubernetes.default), and the connected namespace's subdomains, the
// headless Services whose pods have names under them (db-0.db of a
// StatefulSet), so that every name a pod of ns resolves comes to us, as it
// is, from resolvers that search single labels only. Names that are public
// suffixes are left out (see RoutingSet.Public). It is OS-independent:
// every split-DNS configurator takes its set from here.
func RoutingDomains(clusterDomain, ns string, subdomains, namespaces []string) RoutingSet {
	var set RoutingSet
	seen := map[string]bool{}
	add := func(d string, named bool) {
		d = strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
		if d == "" || seen[d] {
			return
		}
		seen[d] = true
		if IsPublicSuffix(d) {
			if named {
				set.Public = append(set.Public, d)
			}
			return
		}
		if _, err := cleanNames([]string{d}); err != nil {
			return // not a name we may write anywhere
		}
		if len(set.Domains) == MaxRoutingDomains {
			set.Dropped++
			return
		}
		set.Domains = append(set.Domains, d)
	}
	add("svc", false)
	add(clusterDomain, false)
	add("pod", false)
	add(ns, true)
	subs := slices.Clone(subdomains)
	slices.Sort(subs)
	for _, n := range subs {
		add(n, true)
	}
	// Every cluster has these two, and pods use them by these names
	// (kubernetes.default, kube-dns.kube-system), listed or not.
	add("default", true)
	add("kube-system", true)
	rest := slices.Clone(namespaces)
	slices.Sort(rest)
	for _, n := range rest {
		add(n, true)
	}
	return set
}

// IsPublicSuffix reports whether name is a public suffix: a top-level
// domain of the ICANN list (dev, app, com, co.uk), or a longer suffix the
// public suffix list names (github.io). A single label that no rule names
// (svc, pod, local, corp) is not one, although the list's default rule
// would make it a suffix.
func IsPublicSuffix(name string) bool {
	name = strings.ToLower(strings.Trim(name, "."))
	ps, icann := publicsuffix.PublicSuffix(name)
	return ps == name && (icann || strings.Contains(name, "."))
}
