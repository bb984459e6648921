// Package namecheck is the session's self-check of names: it asks the
// laptop's own resolver path (getaddrinfo through nsswitch on Linux,
// libSystem on macOS), not the session's DNS server, for a sentinel Service
// in each name form a pod uses (svc, svc.ns, svc.ns.svc, the FQDN), and says
// which forms work and, for one that does not, what to do. Only the lookup
// itself is per OS; forms, verdicts and hints are shared and tested here.
package namecheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Form is one name form and the sentinel's name in it.
type Form struct {
	Form string // "svc", "svc.ns", "svc.ns.svc", "fqdn"
	Name string
}

// Forms are the sentinel svc of namespace ns in every form, for a session
// connected to namespace connected in a cluster whose DNS domain is domain.
// The single label is the connected namespace's only, so it is checked only
// when the sentinel is there.
func Forms(svc, ns, connected, domain string) []Form {
	domain = strings.Trim(domain, ".")
	var out []Form
	if ns == connected {
		out = append(out, Form{"svc", svc})
	}
	out = append(out, Form{"svc.ns", svc + "." + ns}, Form{"svc.ns.svc", svc + "." + ns + ".svc"})
	if domain != "" {
		out = append(out, Form{"fqdn", svc + "." + ns + ".svc." + domain})
	}
	return out
}

// Lookup asks the OS's resolver path for a name's addresses.
type Lookup func(ctx context.Context, name string) ([]netip.Addr, error)

// Result is one form's verdict.
type Result struct {
	Form
	OK     bool
	Detail string
	Hint   string
}

// Setup is what the hints need to know of the session.
type Setup struct {
	// Mode is the resolver's mode (resolver.Configurator.Mode).
	Mode string
	// Device is the TUN device; Nameserver our DNS server.
	Device     string
	Nameserver string
	// Namespace is the sentinel's namespace; Domain the cluster's.
	Namespace, Domain string
	// Routing are the routing domains the session asked for; Public the
	// namespaces left out of them as public suffixes.
	Routing, Public []string
}

// lookupTimeout bounds one form's lookup: a broken path may wait on a
// nameserver that does not answer (glibc's timeout:1, attempts:2 with
// search domains).
const lookupTimeout = 4 * time.Second

// Run looks every form up at once and judges each: it works when the OS
// returns one of want (the sentinel's ClusterIP as the session's server
// has it), or any address when want is empty.
func Run(ctx context.Context, lookup Lookup, forms []Form, want []netip.Addr, setup Setup) []Result {
	out := make([]Result, len(forms))
	var wg sync.WaitGroup
	for i, f := range forms {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			defer cancel()
			addrs, err := lookup(ctx, f.Name)
			out[i] = judge(f, addrs, err, want, setup)
		})
	}
	wg.Wait()
	return out
}

func judge(f Form, addrs []netip.Addr, err error, want []netip.Addr, setup Setup) Result {
	r := Result{Form: f}
	switch {
	case err != nil:
		r.Detail = err.Error()
	case len(addrs) == 0:
		r.Detail = "no address"
	case len(want) > 0 && !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return slices.Contains(want, a.Unmap()) }):
		r.Detail = fmt.Sprintf("answered %s, not the Service's %s: the name went to another DNS server", joinAddrs(addrs), joinAddrs(want))
	default:
		r.OK = true
		r.Detail = joinAddrs(addrs)
		return r
	}
	r.Hint = Hint(f.Form, setup)
	return r
}

func joinAddrs(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		if t := a.Unmap().String(); !slices.Contains(s, t) {
			s = append(s, t)
		}
	}
	return strings.Join(s, " ")
}

// Mode names as resolver.Configurator.Mode gives them (this package does
// not import resolver: it runs in the daemon, resolver in the helper).
const (
	modeResolved   = "systemd-resolved"
	modeResolvConf = "resolv.conf"
	modeMacOS      = "macos-resolver"
)

// Hint says what to do when form fails, for the session's resolver mode.
func Hint(form string, s Setup) string {
	ns := s.Namespace
	again := "run kubectl tele quit and connect again"
	switch s.Mode {
	case modeResolved:
		switch form {
		case "svc":
			return fmt.Sprintf("single labels get tele0's search domains: `resolvectl domain %s` should list %s.svc.%s; %s", s.Device, ns, s.Domain, again)
		case "svc.ns":
			if slices.Contains(s.Public, ns) {
				return fmt.Sprintf("namespace %s is also a public top-level domain, so it is not a routing domain (it would capture every .%s name): use NAME.%s.svc", ns, ns, ns)
			}
			return fmt.Sprintf("systemd-resolved sends NAME.%s to %s only for the routing domain ~%s: `resolvectl domain %s` should list it; %s; until then use NAME.%s.svc", ns, s.Device, ns, s.Device, again, ns)
		case "svc.ns.svc":
			return fmt.Sprintf("needs the routing domain ~svc on %s (`resolvectl domain %s`); %s; until then use the FQDN", s.Device, s.Device, again)
		default:
			return fmt.Sprintf("`resolvectl status %s` should show DNS server %s and domain %s; %s", s.Device, s.Nameserver, s.Domain, again)
		}
	case modeResolvConf:
		return fmt.Sprintf("/etc/resolv.conf should list nameserver %s first, with search %s.svc.%s: something rewrote it (NetworkManager, resolvconf, DHCP); %s", s.Nameserver, ns, s.Domain, again)
	case modeMacOS:
		if form == "svc.ns" && slices.Contains(s.Public, ns) {
			return fmt.Sprintf("namespace %s is also a public top-level domain, so it gets no /etc/resolver file: use NAME.%s.svc", ns, ns)
		}
		return fmt.Sprintf("`scutil --dns` should list a resolver for %s pointing at the session; %s", formDomain(form, s), again)
	}
	return "the OS resolver does not send this form to the session's DNS server; " + again
}

// formDomain is the routing domain a form needs.
func formDomain(form string, s Setup) string {
	switch form {
	case "svc.ns":
		return s.Namespace
	case "svc.ns.svc":
		return "svc"
	}
	return s.Domain
}
