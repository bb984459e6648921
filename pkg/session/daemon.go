package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"go4.org/netipx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/helper"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/stack"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Device settings of a session. The address is the laptop's own on the TUN:
// the source of its packets into the cluster, never seen there (the manager
// dials anew), from the benchmarking range RFC 2544 keeps off real networks.
const (
	DeviceName = "tele0"
	// deviceMTU is near the 64 KiB maximum: the device is no real link, and
	// 64 KiB segments cost the daemon's stack 45 times fewer packets per
	// byte than 1,420 did (see package device).
	deviceMTU = 65520
)

var deviceAddr = netip.MustParsePrefix("198.18.0.1/32")

// Config is what the daemon needs; the plugin fills it from its flags.
type Config struct {
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	Context    string
	Namespace  string
	Manager    managerclient.Manager
	// ManagerImage and ManagerIdleTimeout start the manager again when its
	// pod is gone (deleted, evicted, idled out).
	ManagerImage            string
	ImagePullSecrets        []string
	ManagerIdleTimeout      time.Duration
	AlsoProxy, NeverProxy   []netip.Prefix
	AllowConflictingSubnets bool
	Paths                   Paths
	Version                 string
	Logger                  *slog.Logger
}

// Daemon is a running session.
type Daemon struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	status    Status
	client    *managerclient.Client
	sessionID string
	acksDial  bool // the manager answers Open.ack_dial
	dnsIP     netip.Addr
	quit      chan struct{}
	quitOnce  sync.Once
	// intercepts are this session's, by name (unique per session, not per
	// namespace), to create again on a new manager.
	intercepts map[string]*teleproto.CreateInterceptRequest
}

// Run is the daemon: it returns when the session ends (quit, or ctx).
func Run(ctx context.Context, cfg Config) error {
	d := &Daemon{cfg: cfg, log: cfg.Logger, quit: make(chan struct{}), intercepts: map[string]*teleproto.CreateInterceptRequest{}}
	d.status = Status{
		Phase: "starting", PID: os.Getpid(), Context: cfg.Context, Server: cfg.RESTConfig.Host,
		Namespace: cfg.Namespace, ManagerNamespace: cfg.Manager.Namespace, ManagerPod: cfg.Manager.Pod,
		ManagerVersion: cfg.Manager.Version, ClientVersion: cfg.Version,
		LogFile: cfg.Paths.DaemonLog(), HelperLogFile: cfg.Paths.HelperLog(), ControlSocket: cfg.Paths.ControlSocket(),
		Since: time.Now().UTC().Format(time.RFC3339),
	}
	ctl, err := listenUnix(cfg.Paths.ControlSocket())
	if err != nil {
		return err
	}
	var runErr error
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveControl(ctx, ctl, d.snapshot, d.Quit, d.interceptHandlers) })
	g.Go(func() error {
		runErr = d.run(ctx)
		if runErr != nil {
			d.setError(runErr)
			d.log.Error("session failed", "err", runErr)
			// Stay up a moment so connect can read the error from status.
			select {
			case <-time.After(3 * time.Second):
			case <-d.quit:
			}
		}
		return errSessionOver // stops the control server
	})
	if err := g.Wait(); !errors.Is(err, errSessionOver) {
		return err
	}
	return runErr
}

var errSessionOver = errors.New("session over")

// Quit ends the session.
func (d *Daemon) Quit() { d.quitOnce.Do(func() { close(d.quit) }) }

func (d *Daemon) snapshot() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *Daemon) update(f func(*Status)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.status)
}

func (d *Daemon) setError(err error) {
	d.update(func(s *Status) { s.Phase = "failed"; s.Error = err.Error() })
}

// manager returns the current client and session, nil between connections.
func (d *Daemon) manager() (*managerclient.Client, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client, d.sessionID
}

// managerFlows is manager, and whether that manager answers Open.ack_dial.
func (d *Daemon) managerFlows() (*managerclient.Client, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client, d.sessionID, d.acksDial
}

func (d *Daemon) run(ctx context.Context) error {
	info, err := d.connectManager(ctx)
	if err != nil {
		return err
	}
	defer func() {
		c, id := d.manager()
		if c != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			c.Depart(dctx, &teleproto.SessionRequest{SessionId: id})
			cancel()
			c.Close()
		}
	}()

	routes, dnsIP, err := planRoutes(info, d.cfg.AlsoProxy, d.cfg.NeverProxy)
	if err != nil {
		return err
	}
	d.dnsIP = dnsIP
	ns, domain := d.cfg.Namespace, info.GetClusterDomain()
	// The OS resolver and our DNS server get the same search list, a
	// pod's of the namespace.
	search := dns.PodSearch(ns, domain)
	req, err := helperRequest(d.cfg, routes, dnsIP, search, domain)
	if err != nil {
		return err
	}
	d.update(func(s *Status) {
		s.Phase = "waiting-for-device"
		s.HelperRequest = req
		s.Device = DeviceName
		s.Routes = prefixStrings(routes)
		s.DNS = DNS{Nameserver: dnsIP.String(), Search: search, ClusterDomain: domain}
		s.Discovery = info.GetDiscovery()
	})
	tdev, dnsMode, err := receiveDevice(ctx, d.cfg.Paths.HelperSocket(), d.quit)
	if err != nil {
		return err
	}
	// The helper asks for DeviceName; on macOS the kernel names the utun
	// itself (utunN), so status shows the device's own name.
	devName, err := tdev.Name()
	if err != nil || devName == "" {
		devName = DeviceName
	}
	d.update(func(s *Status) { s.Device = devName })
	d.log.Info("device received", "device", devName, "routes", routes, "dnsMode", dnsMode)

	stateDir, _ := helper.StateDir()
	upstream, _ := resolver.OriginalNameservers(resolver.Options{StateDir: stateDir})
	dnsSrv := dns.NewServer(dns.Config{
		ClusterDomain: domain,
		Namespace:     ns,
		Search:        search,
		ReverseCIDRs:  routes,
		Cluster:       d.lookupCluster,
		Upstream:      upstreamExchange(upstream),
		Logger:        d.log.With("part", "dns"),
	})
	mem := newIdleMemory()
	st, err := stack.New(stack.Config{
		Device:  tdev,
		Handler: &flows{d: d, dns: dnsSrv, log: d.log.With("part", "flows"), mem: mem},
		Logger:  d.log.With("part", "stack"),
	})
	if err != nil {
		tdev.Close()
		return err
	}
	d.update(func(s *Status) { s.Phase = "connected"; s.HelperRequest = nil; s.DNS.Mode = dnsMode })
	d.log.Info("connected", "namespace", ns, "routes", routes)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st.Run(ctx) })
	g.Go(func() error { return d.keepAlive(ctx, info) })
	g.Go(func() error { return d.dialsLoop(ctx) })
	g.Go(func() error { return mem.run(ctx, 5*time.Second) })
	g.Go(func() error {
		select {
		case <-d.quit:
			d.log.Info("quit requested")
			d.update(func(s *Status) { s.Phase = "ending" })
			cancel()
		case <-ctx.Done():
		}
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// ensureManager finds the manager's pod again, starting the manager if it is
// gone, as connect does.
func (d *Daemon) ensureManager(ctx context.Context) error {
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	m, err := managerclient.Ensure(ectx, managerclient.Options{
		Client: d.cfg.Client, Namespace: d.cfg.Manager.Namespace, Image: d.cfg.ManagerImage,
		PullSecrets: d.cfg.ImagePullSecrets, Version: d.cfg.Version, IdleTimeout: d.cfg.ManagerIdleTimeout,
		Progress: func(s string) { d.log.Info("manager: " + s) },
		Sessions: managerclient.CountSessions(d.cfg.RESTConfig, d.cfg.Client),
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg.Manager = *m
	d.status.ManagerPod = m.Pod
	d.mu.Unlock()
	return nil
}

// restoreIntercepts creates the session's intercepts on a new session (the
// manager keeps them in memory only); what cannot be restored is reported.
func (d *Daemon) restoreIntercepts(ctx context.Context) {
	c, id := d.manager()
	d.mu.Lock()
	reqs := make([]*teleproto.CreateInterceptRequest, 0, len(d.intercepts))
	for _, r := range d.intercepts {
		reqs = append(reqs, r)
	}
	d.mu.Unlock()
	var lost []string
	for _, r := range reqs {
		r.SessionId = id
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := c.CreateIntercept(cctx, r)
		cancel()
		if err != nil {
			d.log.Error("intercept not restored", "intercept", r.GetName(), "err", err)
			lost = append(lost, fmt.Sprintf("%s (%v)", r.GetName(), status.Convert(err).Message()))
			d.mu.Lock()
			delete(d.intercepts, r.GetName())
			d.mu.Unlock()
			continue
		}
		d.log.Info("intercept restored", "intercept", r.GetName())
	}
	if len(lost) > 0 {
		d.update(func(s *Status) { s.Error = "intercepts ended by a manager restart: " + strings.Join(lost, "; ") })
	}
}

// resume reconnects to the manager that still holds this session (only the
// port-forward was lost): the session and its intercepts carry on.
func (d *Daemon) resume(ctx context.Context) bool {
	_, id := d.manager()
	if id == "" {
		return false
	}
	m := d.cfg.Manager
	c, err := managerclient.Dial(ctx, d.cfg.RESTConfig, d.cfg.Client, &m)
	if err != nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Remain(rctx, &teleproto.SessionRequest{SessionId: id}); err != nil {
		c.Close()
		return false
	}
	d.mu.Lock()
	old := d.client
	d.client = c
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.log.Info("session resumed", "session", id, "manager", m.Pod)
	return true
}

// connectManager dials the manager and starts a session.
func (d *Daemon) connectManager(ctx context.Context) (*teleproto.ClusterInfo, error) {
	m := d.cfg.Manager
	c, err := managerclient.Dial(ctx, d.cfg.RESTConfig, d.cfg.Client, &m)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.Arrive(actx, d.cfg.Namespace, d.cfg.Version)
	if err != nil {
		c.Close()
		return nil, err
	}
	d.mu.Lock()
	old := d.client
	d.client, d.sessionID, d.acksDial = c, resp.GetSessionId(), resp.GetAcksDial()
	d.status.Session = resp.GetSessionId()
	d.status.ManagerVersion = resp.GetManagerVersion()
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if v := resp.GetManagerVersion(); v != d.cfg.Version {
		d.log.Warn("manager version differs from the plugin's", "manager", v, "plugin", d.cfg.Version)
	}
	d.log.Info("session started", "session", resp.GetSessionId(), "manager", m.Pod, "cluster", resp.GetCluster())
	return resp.GetCluster(), nil
}

// remainInterval is how often the daemon sends Remain: five times within the
// manager's default heartbeat timeout (manager.DefaultHeartbeatTimeout,
// 10 s), which ends the session of a laptop gone silent.
const remainInterval = 2 * time.Second

// keepAlive sends Remain often enough for the manager's heartbeat timeout and
// reconnects when the port-forward or the session is lost.
func (d *Daemon) keepAlive(ctx context.Context, _ *teleproto.ClusterInfo) error {
	t := time.NewTicker(remainInterval)
	defer t.Stop()
	for {
		c, id := d.manager()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			d.log.Warn("port-forward to the manager lost; reconnecting")
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Remain(rctx, &teleproto.SessionRequest{SessionId: id})
			cancel()
			if err == nil {
				continue
			}
			d.log.Warn("heartbeat failed; reconnecting", "err", err, "code", status.Code(err))
			if status.Code(err) != codes.NotFound && status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
				continue
			}
		}
		d.update(func(s *Status) { s.Phase = "reconnecting" })
		for backoff := 300 * time.Millisecond; ; backoff = min(backoff*2, 2*time.Second) {
			if d.resume(ctx) {
				break
			}
			err := d.ensureManager(ctx)
			if err == nil {
				_, err = d.connectManager(ctx)
			}
			if err == nil {
				d.restoreIntercepts(ctx)
				break
			}
			d.log.Warn("reconnect failed", "err", err)
			if inc := (*managerclient.IncompatibleError)(nil); errors.As(err, &inc) {
				// Another version's manager took the namespace while ours was
				// gone: say so in status, and keep trying (it may be uninstalled).
				d.update(func(s *Status) { s.Error = err.Error() })
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
		}
		d.update(func(s *Status) { s.Phase = "connected" })
	}
}

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
func upstreamExchange(servers []netip.Addr) dns.Exchange {
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

func helperRequest(cfg Config, routes []netip.Prefix, dnsIP netip.Addr, search []string, domain string) (json.RawMessage, error) {
	dev, err := json.Marshal(device.Request{
		Version:                 device.RequestVersion,
		Name:                    DeviceName,
		MTU:                     deviceMTU,
		Addr:                    deviceAddr.String(),
		Routes:                  prefixStrings(routes),
		SocketPath:              cfg.Paths.HelperSocket(),
		AllowConflictingSubnets: cfg.AllowConflictingSubnets,
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(helper.Request{Device: dev, DNS: helper.DNSRequest{
		Nameserver: dnsIP.String(), Search: search, Domains: []string{domain},
	}})
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// listenUnix listens on a socket only its user may use, replacing a stale
// socket file a dead daemon left.
func listenUnix(path string) (*net.UnixListener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a daemon already listens on %s", path)
	}
	os.Remove(path)
	old := umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// receiveDevice waits for the helper to hand over the TUN device.
func receiveDevice(ctx context.Context, path string, quit <-chan struct{}) (devT tun.Device, mode string, err error) {
	l, err := listenUnix(path)
	if err != nil {
		return nil, "", err
	}
	defer func() { l.Close(); os.Remove(path) }()
	// The user may be typing a sudo password: wait long, but not forever.
	l.SetDeadline(time.Now().Add(5 * time.Minute))
	stop := context.AfterFunc(ctx, func() { l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	go func() {
		select {
		case <-quit:
			l.SetDeadline(time.Unix(1, 0))
		case <-ctx.Done():
		}
	}()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, "", fmt.Errorf("wait for the TUN device from the helper: %w", err)
		}
		if err := device.CheckPeer(c, 0); err != nil { // only root hands us a device
			c.Close()
			continue
		}
		f, meta, err := device.ReceiveFile(c)
		if err != nil {
			c.Close()
			return nil, "", err
		}
		tdev, err := device.Open(f)
		if err != nil {
			c.Close()
			return nil, "", fmt.Errorf("open the TUN device: %w", err)
		}
		c.Write([]byte{1}) // the helper waits for this before it exits
		c.Close()
		var m struct {
			DNSMode string `json:"dnsMode"`
		}
		json.Unmarshal(meta, &m)
		return tdev, strings.TrimSpace(m.DNSMode), nil
	}
}
