package session

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/namecheck"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Names as a pod has them on a split-DNS laptop: the routing domains the
// helper gives the OS resolver (resolver.RoutingDomains), kept current while
// connected, and the self-check of every name form.

// Where the namespaces of the routing domains came from.
const (
	namespacesListed = "listed"
	namespacesConfig = "config"
)

// routingSources are what the routing set is made of besides the fixed
// names: the namespaces the user can see, and the connected namespace's
// subdomains. Each is nil, and not watched, when the user may not list it.
type routingSources struct {
	namespaces, subdomains []string
	listNS, listSlices     bool
}

// readRouting lists the namespaces (cluster-scoped, which kubectl-tele's
// namespaced Role does not grant: when refused, the config's namespaces,
// Config.DNSNamespaces, are used) and the connected namespace's
// EndpointSlices (the Role grants list and watch, for the manager), with
// the user's own credentials.
func (d *Daemon) readRouting(ctx context.Context) routingSources {
	var src routingSources
	if d.cfg.Client == nil {
		return src
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if list, err := d.cfg.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		src.listNS = true
		for _, n := range list.Items {
			src.namespaces = append(src.namespaces, n.Name)
		}
	} else if !apierrors.IsForbidden(err) {
		d.log.Warn("could not list namespaces; routing the configured ones", "err", err)
	}
	if list, err := d.cfg.Client.DiscoveryV1().EndpointSlices(d.cfg.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
		src.listSlices = true
		src.subdomains = subdomainsOf(list.Items)
	} else {
		d.log.Warn("could not list EndpointSlices: names like pod-0.headless-service resolve only where single labels are searched", "err", err)
	}
	return src
}

// subdomainsOf are the headless Services under which pods have DNS names
// (a StatefulSet's db-0.db): those with an endpoint that has a hostname.
func subdomainsOf(eps []discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range eps {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" || slices.Contains(out, svc) {
			continue
		}
		if slices.ContainsFunc(s.Endpoints, func(e discoveryv1.Endpoint) bool { return e.Hostname != nil && *e.Hostname != "" }) {
			out = append(out, svc)
		}
	}
	return out
}

// routingSet is the session's routing set: the connected and manager's
// namespaces, and the configured ones, are always in it.
func (d *Daemon) routingSet(domain string, src routingSources) resolver.RoutingSet {
	all := append(slices.Clone(src.namespaces), d.cfg.Manager.Namespace)
	all = append(all, d.cfg.DNSNamespaces...)
	return resolver.RoutingDomains(domain, d.cfg.Namespace, src.subdomains, all)
}

// informer runs a shared informer that keeps only what keep leaves of each
// object, and pokes changed on every addition, update and deletion.
func informer(lw *cache.ListWatch, obj runtime.Object, keep func(any) any, changed chan<- struct{}) cache.SharedIndexInformer {
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	inf.SetTransform(func(o any) (any, error) { return keep(o), nil })
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	})
	return inf
}

// watchRouting keeps the routing domains current while connected: on every
// change of the namespaces or of the connected namespace's EndpointSlices
// (watches with the user's credentials, of what they may list) it computes
// the set again and, when it changed, has the helper apply it. The helper is
// a short-lived root process, so the daemon runs it again,
// non-interactively (UpdateDNS, sudo -n); when that fails, status says so.
func (d *Daemon) watchRouting(ctx context.Context, domain, mode string, src routingSources, req *teleproto.HelperRequest) error {
	changed := make(chan struct{}, 1)
	var nsInf, epInf cache.SharedIndexInformer
	if src.listNS {
		nsInf = informer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return d.cfg.Client.CoreV1().Namespaces().List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return d.cfg.Client.CoreV1().Namespaces().Watch(ctx, o)
			},
		}, &corev1.Namespace{}, func(o any) any {
			if ns, ok := o.(*corev1.Namespace); ok { // only names matter
				return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, ResourceVersion: ns.ResourceVersion}}
			}
			return o
		}, changed)
	}
	if src.listSlices {
		eps := d.cfg.Client.DiscoveryV1().EndpointSlices(d.cfg.Namespace)
		epInf = informer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return eps.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return eps.Watch(ctx, o)
			},
		}, &discoveryv1.EndpointSlice{}, func(o any) any {
			s, ok := o.(*discoveryv1.EndpointSlice)
			if !ok {
				return o
			}
			// Only the Service's name and whether pods have hostnames.
			small := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion,
				Labels: map[string]string{discoveryv1.LabelServiceName: s.Labels[discoveryv1.LabelServiceName]}}}
			for _, e := range s.Endpoints {
				if e.Hostname != nil {
					small.Endpoints = append(small.Endpoints, discoveryv1.Endpoint{Hostname: e.Hostname})
					break
				}
			}
			return small
		}, changed)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, inf := range []cache.SharedIndexInformer{nsInf, epInf} {
		if inf != nil {
			wg.Go(func() { inf.RunWithContext(ctx) })
		}
	}
	current := req.GetDns().GetDomains()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		// Namespaces and pods come and go in bursts (a test suite, a
		// rollout): one update for a burst.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		now := routingSources{}
		if nsInf != nil {
			if !nsInf.HasSynced() {
				continue
			}
			now.namespaces = nsInf.GetStore().ListKeys()
		}
		if epInf != nil {
			if !epInf.HasSynced() {
				continue
			}
			var items []discoveryv1.EndpointSlice
			for _, o := range epInf.GetStore().List() {
				items = append(items, *o.(*discoveryv1.EndpointSlice))
			}
			now.subdomains = subdomainsOf(items)
		}
		set := d.routingSet(domain, now)
		if slices.Equal(set.Domains, current) {
			continue
		}
		next := proto.CloneOf(req)
		next.Dns.Domains = set.Domains
		err := d.cfg.UpdateDNS(ctx, next, mode)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("could not update the routing domains", "domains", set.Domains, "err", err)
		} else {
			current = set.Domains
			d.log.Info("routing domains updated", "domains", set.Domains, "public", set.Public)
		}
		d.update(func(s *teleproto.DaemonStatus) {
			if err != nil {
				s.Dns.UpdateError = fmt.Sprintf("the routing domains could not follow the cluster (%v): run kubectl tele quit and connect again", err)
				return
			}
			s.Dns.UpdateError = ""
			s.Dns.RoutingDomains, s.Dns.PublicNamespaces = set.Domains, set.Public
		})
		if err == nil {
			d.recheckNames(ctx)
		}
	}
}

// nameChecker runs the self-check for the session; set once connected.
type nameChecker struct {
	mu    sync.Mutex
	run   func(context.Context) []namecheck.Result
	last  time.Time
	fresh time.Duration
}

// sentinelWant is the sentinel's address as the session's own DNS server
// has it: what the OS's answer must be.
func sentinelWant(ctx context.Context, srv *dns.Server, fqdn string) []netip.Addr {
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(fqdn), mdns.TypeA)
	var out []netip.Addr
	for _, rr := range srv.Answer(ctx, q).Answer {
		if a, ok := rr.(*mdns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// startNameCheck sets up the self-check of a connected session: the
// manager's own Service, whose ClusterIP our server knows, asked of the OS
// in every form.
func (d *Daemon) startNameCheck(srv *dns.Server, domain, mode, device, nameserver string) {
	mns := d.cfg.Manager.Namespace
	if mns == "" {
		mns = d.cfg.Namespace
	}
	forms := namecheck.Forms(managerclient.Name, mns, d.cfg.Namespace, domain)
	lookup := d.cfg.OSLookup
	if lookup == nil {
		lookup = namecheck.OSLookup
	}
	d.names.mu.Lock()
	defer d.names.mu.Unlock()
	d.names.fresh = 2 * time.Second
	d.names.run = func(ctx context.Context) []namecheck.Result {
		st, _ := d.snapshot()
		setup := namecheck.Setup{Mode: mode, Device: device, Nameserver: nameserver, Namespace: mns, Domain: domain,
			Routing: st.GetDns().GetRoutingDomains(), Public: st.GetDns().GetPublicNamespaces()}
		want := sentinelWant(ctx, srv, forms[len(forms)-1].Name)
		return namecheck.Run(ctx, lookup, forms, want, setup)
	}
}

// recheckNames runs the self-check now and puts it into the status.
func (d *Daemon) recheckNames(ctx context.Context) {
	d.names.mu.Lock()
	defer d.names.mu.Unlock()
	if d.names.run == nil {
		return
	}
	res := d.names.run(ctx)
	d.names.last = time.Now()
	var checks []*teleproto.NameCheck
	for _, r := range res {
		checks = append(checks, &teleproto.NameCheck{Form: r.Form.Form, Name: r.Name, Ok: r.OK, Detail: r.Detail, Hint: r.Hint})
		if !r.OK {
			d.log.Warn("self-check: a name form does not resolve through the OS", "form", r.Form.Form, "name", r.Name, "detail", r.Detail, "hint", r.Hint)
		}
	}
	d.update(func(s *teleproto.DaemonStatus) {
		if s.Dns != nil {
			s.Dns.Checks = checks
		}
	})
}

// refreshNames runs the self-check again when the last one is older than
// its freshness: status shows the truth of now, not of connect's time.
func (d *Daemon) refreshNames(ctx context.Context) {
	d.names.mu.Lock()
	stale := d.names.run != nil && time.Since(d.names.last) > d.names.fresh
	d.names.mu.Unlock()
	if stale {
		// The check's own timeouts bound it, not the caller's.
		d.recheckNames(context.WithoutCancel(ctx))
	}
}

// upstreamFor is where the session's DNS server sends names that are not
// the cluster's. With systemd-resolved, the servers resolved itself uses,
// never its stub: the stub would route a name under our routing domains
// back to us (a cluster miss like nosuch.NS went round for 12 s).
func upstreamFor(mode string, stateDir string, own netip.Addr) ([]netip.Addr, error) {
	if mode == resolver.ModeResolved {
		return resolver.ResolvedUpstreams(resolver.Options{}, own)
	}
	return resolver.OriginalNameservers(resolver.Options{StateDir: stateDir})
}
