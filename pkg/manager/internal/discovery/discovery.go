// Package discovery learns what a laptop needs to route and resolve like a pod
// (cluster domain, DNS server, service and pod CIDRs) using only what a
// namespace-scoped Role can grant, and records how each value was learnt.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultClusterDomain is used when the resolver's search list does not show
// the cluster domain.
const DefaultClusterDomain = "cluster.local"

// Info is what discovery learnt.
type Info struct {
	ClusterDomain string
	// DNSServer is ip:port.
	DNSServer    string
	ServiceCIDRs []netip.Prefix
	PodCIDRs     []netip.Prefix
	// Discovery says how each value was learnt, e.g. "service-cidr:dry-run".
	Discovery []string
}

// Resolver is the part of resolv.conf discovery uses.
type Resolver struct {
	// Nameserver is ip:port of the first usable nameserver.
	Nameserver string
	Search     []string
}

// ReadResolvConf reads a resolv.conf(5) file. Besides plain addresses, a
// nameserver may be written ip:port or [ip]:port (not something libc
// understands; it lets tests point at a server on a spare port).
func ReadResolvConf(path string) (Resolver, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return Resolver{}, fmt.Errorf("read resolver config %s: %w", path, err)
	}
	r := Resolver{Search: cc.Search}
	for _, s := range cc.Servers {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			r.Nameserver = ap.String()
			break
		}
		if a, err := netip.ParseAddr(s); err == nil {
			r.Nameserver = net.JoinHostPort(a.WithZone("").String(), cc.Port)
			break
		}
	}
	if r.Nameserver == "" {
		return r, fmt.Errorf("read resolver config %s: no nameserver with an IP address", path)
	}
	return r, nil
}

// ClusterDomainFromSearch finds the cluster domain in a pod's search list,
// which kubelet writes as "NS.svc.DOMAIN svc.DOMAIN DOMAIN ...".
func ClusterDomainFromSearch(search []string, namespace string) (string, bool) {
	norm := make([]string, 0, len(search))
	for _, s := range search {
		norm = append(norm, strings.TrimSuffix(strings.ToLower(s), "."))
	}
	if namespace != "" {
		prefix := strings.ToLower(namespace) + ".svc."
		for _, s := range norm {
			if d, ok := strings.CutPrefix(s, prefix); ok && d != "" {
				return d, true
			}
		}
	}
	for _, s := range norm {
		if d, ok := strings.CutPrefix(s, "svc."); ok && d != "" {
			return d, true
		}
	}
	return "", false
}

// rangeRE matches the allocator's message, kept verbatim from kube-apiserver
// (pkg/registry/core/service/ipallocator.ErrNotInRange):
// "the provided IP (%v) is not in the valid range. The range of valid IPs is %s".
var rangeRE = regexp.MustCompile(`The range of valid IPs is ([0-9A-Fa-f:.]+/[0-9]+)`)

// ParseServiceRangeError extracts the service CIDRs an API server names when it
// refuses a ClusterIP outside its ranges. It returns them sorted, without
// duplicates; none if the message is something else.
func ParseServiceRangeError(msg string) []netip.Prefix {
	var out []netip.Prefix
	for _, m := range rangeRE.FindAllStringSubmatch(msg, -1) {
		p, err := netip.ParsePrefix(m[1])
		if err != nil {
			continue
		}
		out = append(out, p.Masked())
	}
	return sortPrefixes(out)
}

// CoverPodIPs returns the /24s (IPv4) and /64s (IPv6) holding the given pod
// IPs, sorted and without duplicates. A namespace-scoped manager cannot read
// nodes' podCIDRs, so this is the best guess from what it can see.
func CoverPodIPs(ips []netip.Addr) []netip.Prefix { return cover(ips, 24, 64) }

// coverServiceIPs returns the /16s (IPv4) and /112s (IPv6) around ClusterIPs:
// a guess when nothing better is readable.
func coverServiceIPs(ips []netip.Addr) []netip.Prefix { return cover(ips, 16, 112) }

// cover returns the prefixes of the given lengths holding ips, merged.
func cover(ips []netip.Addr, v4bits, v6bits int) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		bits := v4bits
		if ip.Is6() {
			bits = v6bits
		}
		if p, err := ip.Prefix(bits); err == nil {
			out = append(out, p)
		}
	}
	return mergePrefixes(out)
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefix)
	return slices.Compact(ps)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// mergePrefixes sorts, removes duplicates and drops prefixes contained in
// another.
func mergePrefixes(ps []netip.Prefix) []netip.Prefix {
	ps = sortPrefixes(ps)
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Config is what Discover needs.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	Resolver  Resolver
	Logger    *slog.Logger
}

// probeServiceName names the Service created with DryRun=All to learn the
// service CIDRs; nothing is ever stored under it.
const probeServiceName = "kubectl-tele-cidr-probe"

// ErrUnanswered says that the API server did not answer a read that
// Discover needed (unreachable, timed out, overloaded): the Info returned
// with it holds fallbacks, not what the cluster has, and must not replace a
// value read before (a Service CIDR learnt an hour ago is still right; the
// "unknown" a blip leaves is not).
var ErrUnanswered = errors.New("the API server did not answer")

// Unanswered reports whether err is a failure to get an answer from the API
// server, rather than an answer: a transport error (connection refused,
// reset, TLS, a deadline) or a status that says "later" (503, 504, 429).
// A Forbidden, NotFound or Invalid is an answer: the weaker source it
// falls back to is what this cluster gives us.
func Unanswered(err error) bool {
	if err == nil {
		return false
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return true
	}
	return apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err)
}

// reads remembers the first read of a Discover that went unanswered.
type reads struct{ err error }

func (r *reads) note(what string, err error) {
	if r.err == nil && Unanswered(err) {
		r.err = fmt.Errorf("%s: %w", what, err)
	}
}

// Discover learns the cluster's routing and DNS facts. Each value falls back
// to a weaker source and says so in Discovery. It fails if ctx ends, and
// with an error wrapping ErrUnanswered (the fallbacks in Info) when a read
// it relied on got no answer.
func Discover(ctx context.Context, cfg Config) (Info, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var r reads
	info, err := discover(ctx, cfg, log, &r)
	if err == nil && r.err != nil {
		err = fmt.Errorf("%w: %w", ErrUnanswered, r.err)
	}
	return info, err
}

func discover(ctx context.Context, cfg Config, log *slog.Logger, r *reads) (Info, error) {
	info := Info{DNSServer: cfg.Resolver.Nameserver}
	info.Discovery = append(info.Discovery, "dns-server:resolv.conf")

	if d, ok := ClusterDomainFromSearch(cfg.Resolver.Search, cfg.Namespace); ok {
		info.ClusterDomain = d
		info.Discovery = append(info.Discovery, "cluster-domain:resolv.conf")
	} else {
		info.ClusterDomain = DefaultClusterDomain
		info.Discovery = append(info.Discovery, "cluster-domain:default")
	}

	cidrs, how, err := serviceCIDRs(ctx, cfg, log, r)
	if err != nil {
		return info, err
	}
	info.ServiceCIDRs = cidrs
	info.Discovery = append(info.Discovery, "service-cidr:"+how)

	cidrs, how, err = podCIDRs(ctx, cfg, log, r)
	if err != nil {
		return info, err
	}
	info.PodCIDRs = cidrs
	info.Discovery = append(info.Discovery, "pod-cidr:"+how)
	return info, nil
}

func serviceCIDRs(ctx context.Context, cfg Config, log *slog.Logger, r *reads) ([]netip.Prefix, string, error) {
	// 1. ServiceCIDR objects: exact, but cluster-scoped, so usually Forbidden.
	list, err := cfg.Client.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{})
	if err == nil {
		var out []netip.Prefix
		for _, sc := range list.Items {
			for _, c := range sc.Spec.CIDRs {
				if p, err := netip.ParsePrefix(c); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
		if len(out) > 0 {
			return mergePrefixes(out), "servicecidrs", nil
		}
	} else if ctx.Err() != nil {
		return nil, "", fmt.Errorf("list servicecidrs: %w", err)
	} else {
		r.note("list servicecidrs", err)
		log.DebugContext(ctx, "cannot list servicecidrs", "err", err)
	}

	// 2. A dry-run Service with a ClusterIP outside every range: the
	// allocator's refusal names the range. One probe per family, since each
	// family has its own allocator; a family the cluster lacks fails
	// validation instead and names nothing.
	var out []netip.Prefix
	for _, ip := range []string{"0.0.0.1", "::1"} {
		ps, err := probeServiceRange(ctx, cfg, ip)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", err
			}
			if !errors.Is(err, errAccepted) {
				r.note("dry-run create service with clusterIP "+ip, err)
			}
			log.DebugContext(ctx, "service CIDR dry-run probe", "clusterIP", ip, "err", err)
			continue
		}
		out = append(out, ps...)
	}
	if len(out) > 0 {
		return mergePrefixes(out), "dry-run", nil
	}

	// 3. Guesses around ClusterIPs we can read.
	var ips []netip.Addr
	how := "namespace-services"
	if svc, err := cfg.Client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		ips = append(ips, clusterIPs(svc)...)
		how = "kubernetes-service"
	} else if ctx.Err() != nil {
		return nil, "", fmt.Errorf("get service default/kubernetes: %w", err)
	} else {
		r.note("get service default/kubernetes", err)
	}
	svcs, err := cfg.Client.CoreV1().Services(cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("list services in namespace %s: %w", cfg.Namespace, err)
		}
		r.note("list services in namespace "+cfg.Namespace, err)
		log.WarnContext(ctx, "cannot list services", "namespace", cfg.Namespace, "err", err)
	} else {
		for i := range svcs.Items {
			if svcs.Items[i].Name == probeServiceName {
				continue // only a fake API server would have stored the probe
			}
			ips = append(ips, clusterIPs(&svcs.Items[i])...)
		}
	}
	if len(ips) == 0 {
		return nil, "unknown", nil
	}
	return coverServiceIPs(ips), how, nil
}

// errAccepted is an answer, if an odd one: the probe names no range.
var errAccepted = errors.New("unexpectedly accepted")

// probeServiceRange asks the API server, with DryRun=All, to create a Service
// whose ClusterIP is outside any range, and returns the range the refusal names.
func probeServiceRange(ctx context.Context, cfg Config, ip string) ([]netip.Prefix, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: probeServiceName, Namespace: cfg.Namespace},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  ip,
			ClusterIPs: []string{ip},
			Ports:      []corev1.ServicePort{{Name: "probe", Port: 1, Protocol: corev1.ProtocolTCP}},
		},
	}
	_, err := cfg.Client.CoreV1().Services(cfg.Namespace).Create(ctx, svc, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return nil, fmt.Errorf("dry-run create service %s/%s with clusterIP %s: %w", cfg.Namespace, probeServiceName, ip, errAccepted)
	}
	msgs := []string{err.Error()}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		if d := se.Status().Details; d != nil {
			for _, c := range d.Causes {
				msgs = append(msgs, c.Message)
			}
		}
	}
	if ps := ParseServiceRangeError(strings.Join(msgs, "\n")); len(ps) > 0 {
		return ps, nil
	}
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("dry-run create service %s/%s needs the verb create on services in namespace %s: %w", cfg.Namespace, probeServiceName, cfg.Namespace, err)
	}
	return nil, fmt.Errorf("dry-run create service %s/%s: no range in the refusal: %w", cfg.Namespace, probeServiceName, err)
}

func clusterIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func podCIDRs(ctx context.Context, cfg Config, log *slog.Logger, r *reads) ([]netip.Prefix, string, error) {
	// 1. Nodes' podCIDRs: exact, but nodes are cluster-scoped.
	nodes, err := cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		var out []netip.Prefix
		for _, n := range nodes.Items {
			cs := n.Spec.PodCIDRs
			if len(cs) == 0 && n.Spec.PodCIDR != "" {
				cs = []string{n.Spec.PodCIDR}
			}
			for _, c := range cs {
				if p, err := netip.ParsePrefix(c); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
		if len(out) > 0 {
			return mergePrefixes(out), "nodes", nil
		}
	} else if ctx.Err() != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	} else {
		r.note("list nodes", err)
		log.DebugContext(ctx, "cannot list nodes", "err", err)
	}

	// 2. The IPs of the pods we can see. Host-network pods carry node IPs,
	// which must not be routed into the cluster.
	pods, err := cfg.Client.CoreV1().Pods(cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("list pods in namespace %s: %w", cfg.Namespace, err)
		}
		r.note("list pods in namespace "+cfg.Namespace, err)
		log.WarnContext(ctx, "cannot list pods", "namespace", cfg.Namespace, "err", err)
		return nil, "unknown", nil
	}
	var ips []netip.Addr
	for _, p := range pods.Items {
		if p.Spec.HostNetwork {
			continue
		}
		ps := p.Status.PodIPs
		if len(ps) == 0 && p.Status.PodIP != "" {
			ps = []corev1.PodIP{{IP: p.Status.PodIP}}
		}
		for _, ip := range ps {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				ips = append(ips, a)
			}
		}
	}
	if len(ips) == 0 {
		return nil, "unknown", nil
	}
	return CoverPodIPs(ips), "namespace-pods", nil
}
