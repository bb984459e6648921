package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
	"go4.org/netipx"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// What the session routes and resolves: the cluster's CIDRs less the
// laptop's own (planRoutes), and the answers of its DNS server.

func (d *Daemon) lookupCluster(ctx context.Context, q *mdns.Msg) (*mdns.Msg, error) {
	c, id := d.manager()
	if c == nil {
		return nil, errors.New("not connected to the manager")
	}
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	resp, err := c.LookupDNS(ctx, &teleproto.DNSRequest{SessionId: id, Query: b})
	if err != nil {
		return nil, err
	}
	a := new(mdns.Msg)
	if err := a.Unpack(resp.GetAnswer()); err != nil {
		return nil, fmt.Errorf("unpack cluster DNS answer: %w", err)
	}
	return a, nil
}

// upstreamExchange asks the laptop's original nameservers, for names that are
// not the cluster's.
func upstreamExchange(servers []netip.Addr, nxdomain bool) dns.Exchange {
	if len(servers) == 0 && nxdomain {
		// systemd-resolved with no server of its own (only ours, or none):
		// a name that is not the cluster's does not exist here, and must
		// not go back to resolved's stub, which would route it to us.
		return func(_ context.Context, q *mdns.Msg) (*mdns.Msg, error) {
			r := new(mdns.Msg)
			r.SetRcode(q, mdns.RcodeNameError)
			return r, nil
		}
	}
	if len(servers) == 0 {
		return nil
	}
	return func(ctx context.Context, q *mdns.Msg) (*mdns.Msg, error) {
		var last error
		for _, s := range servers {
			c := &mdns.Client{Timeout: 2 * time.Second}
			a, _, err := c.ExchangeContext(ctx, q, netip.AddrPortFrom(s, 53).String())
			if err == nil {
				return a, nil
			}
			last = err
		}
		return nil, last
	}
}

// planRoutes turns what the manager learnt into the device's routes:
// service and pod CIDRs, plus --also-proxy, less --never-proxy; the DNS
// server's address is always routed.
func planRoutes(info *teleproto.ClusterInfo, also, never []netip.Prefix) ([]netip.Prefix, netip.Addr, error) {
	var b netipx.IPSetBuilder
	for _, s := range append(append([]string{}, info.GetServiceCidrs()...), info.GetPodCidrs()...) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("manager sent CIDR %q: %w", s, err)
		}
		b.AddPrefix(p.Masked())
	}
	for _, p := range also {
		b.AddPrefix(p.Masked())
	}
	for _, p := range never {
		b.RemovePrefix(p.Masked())
	}
	host, _, err := net.SplitHostPort(info.GetDnsServer())
	if err != nil {
		host = info.GetDnsServer()
	}
	dnsIP, err := netip.ParseAddr(host)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("manager sent DNS server %q: %w", info.GetDnsServer(), err)
	}
	set, err := b.IPSet()
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if !set.Contains(dnsIP) {
		b.AddPrefix(netip.PrefixFrom(dnsIP, dnsIP.BitLen()))
		set, _ = b.IPSet()
	}
	routes := set.Prefixes()
	if len(routes) == 0 {
		return nil, netip.Addr{}, errors.New("nothing to route: the manager found no service or pod CIDR; pass --also-proxy CIDR")
	}
	return routes, dnsIP, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
