package session

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/mount"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/dns"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/helper"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/namecheck"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/resolver"
	"github.com/kubectl-tele/kubectl-tele/pkg/net/stack"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Device settings of a session. Its address (Config.DeviceAddr) is the
// laptop's own on the TUN: the source of its packets into the cluster, never
// seen there (the manager dials anew).
const (
	DeviceName = "tele0"
	// deviceMTU is near the 64 KiB maximum: the device is no real link, and
	// 64 KiB segments cost the daemon's stack 45 times fewer packets per
	// byte than 1,420 did (see package device).
	deviceMTU = 65520
)

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
	// DNSNamespaces are namespaces to route to the cluster's DNS (NAME.NS)
	// when the user may not list namespaces (config dnsNamespaces, flag
	// --dns-namespace).
	DNSNamespaces []string
	// UpdateDNS runs the privileged helper again, non-interactively, to
	// apply a request's DNS settings to the running session (new routing
	// domains); mode is the resolver mode the first run chose. Nil: the
	// routing domains stay as connect set them.
	UpdateDNS func(ctx context.Context, req *teleproto.HelperRequest, mode string) error
	// OSLookup asks the OS's resolver path, for the self-check; nil means
	// namecheck.OSLookup.
	OSLookup namecheck.Lookup

	// DeviceAddr is the laptop's address on the TUN; zero means
	// device.DefaultAddr.
	DeviceAddr netip.Prefix
}

// Daemon is a running session.
type Daemon struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	status *teleproto.DaemonStatus
	// changed is closed, and replaced, on every change of status.
	changed   chan struct{}
	client    *managerclient.Client
	sessionID string
	dnsIP     netip.Addr
	quit      chan struct{}
	quitOnce  sync.Once
	// heartbeat is how often keepAlive sends Remain (remainInterval), and
	// redial one attempt to get the session back (redialManager): tests
	// shorten and replace them.
	heartbeat time.Duration
	redial    func(context.Context) error
	// intercepts are this session's, by name (unique per session, not per
	// namespace), to create again on a new manager.
	intercepts map[string]*teleproto.CreateInterceptRequest
	// names is the self-check of name forms, once connected.
	names nameChecker
	// mounts are the intercepts' --mount folders, by intercept name.
	mounts map[string]*mount.Mount
}

// Run is the daemon: it returns when the session ends (quit, or ctx).
func Run(ctx context.Context, cfg Config) error {
	d := newDaemon(cfg)
	ctl, err := listenUnix(cfg.Paths.ControlSocket())
	if err != nil {
		return err
	}
	// A daemon that died left its --mount folders full: empty them.
	d.cleanStaleMounts()
	// After the control server: no intercept starts a mount after this.
	defer d.endMounts()
	return d.serve(ctx, ctl, d.run)
}

// newDaemon is a daemon in phase starting.
func newDaemon(cfg Config) *Daemon {
	d := &Daemon{cfg: cfg, log: cfg.Logger, quit: make(chan struct{}), changed: make(chan struct{}),
		heartbeat: remainInterval, intercepts: map[string]*teleproto.CreateInterceptRequest{}, mounts: map[string]*mount.Mount{}}
	d.redial = d.redialManager
	d.status = &teleproto.DaemonStatus{
		Version: teleproto.CurrentControlVersion, Phase: teleproto.ConnectPhase_CONNECT_PHASE_STARTING,
		Pid: int32(os.Getpid()), Context: cfg.Context, Server: cfg.RESTConfig.Host,
		Namespace: cfg.Namespace, ManagerNamespace: cfg.Manager.Namespace, ManagerPod: cfg.Manager.Pod,
		ManagerVersion: cfg.Manager.Version, ClientVersion: cfg.Version,
		LogFile: cfg.Paths.DaemonLog(), HelperLogFile: cfg.Paths.HelperLog(), ControlSocket: cfg.Paths.ControlSocket(),
		Since: time.Now().UTC().Format(time.RFC3339),
	}
	return d
}

// serve answers on the control socket ctl while run runs, and a moment
// after it fails, so that connect can read the error from status.
func (d *Daemon) serve(ctx context.Context, ctl net.Listener, run func(context.Context) error) error {
	var runErr error
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveControl(ctx, ctl, d) })
	g.Go(func() error {
		runErr = run(ctx)
		if runErr != nil {
			d.setError(runErr)
			d.log.Error("session failed", "err", runErr)
			// Stay up a moment so connect can read the error from status.
			select {
			case <-time.After(3 * time.Second):
			case <-d.quit:
			case <-ctx.Done():
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

// snapshot is a copy of the status, and a channel closed on its next change.
func (d *Daemon) snapshot() (*teleproto.DaemonStatus, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return proto.CloneOf(d.status), d.changed
}

func (d *Daemon) update(f func(*teleproto.DaemonStatus)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.status)
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *Daemon) setPhase(p teleproto.ConnectPhase) {
	d.update(func(s *teleproto.DaemonStatus) { s.Phase = p })
}

func (d *Daemon) setError(err error) {
	d.update(func(s *teleproto.DaemonStatus) {
		s.Phase = teleproto.ConnectPhase_CONNECT_PHASE_FAILED
		s.Error = err.Error()
	})
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
	// Split-DNS resolvers (systemd-resolved, macOS) send a dotted name
	// to us only under a routing domain: the namespaces are.
	src := d.readRouting(ctx)
	set := d.routingSet(domain, src)
	from := namespacesConfig
	if src.listNS {
		from = namespacesListed
	}
	dc, err := chooseDevice(runtime.GOOS, d.cfg, routes, nil)
	if err != nil {
		return err
	}
	// On macOS the resolver files point at a loopback server of ours
	// (see dns.ListenLoopback), bound before the helper is asked.
	var loPC net.PacketConn
	var loL net.Listener
	if loopbackDNS(runtime.GOOS) {
		if loPC, loL, err = dns.ListenLoopback(); err != nil {
			return err
		}
		defer loPC.Close()
		defer loL.Close()
		dc.LoopbackPort = uint16(loPC.LocalAddr().(*net.UDPAddr).Port)
	}
	req := helperRequest(d.cfg, routes, dnsIP, search, set.Domains, dc)
	d.update(func(s *teleproto.DaemonStatus) {
		s.Phase = teleproto.ConnectPhase_CONNECT_PHASE_WAITING_FOR_DEVICE
		s.HelperRequest = req
		s.Device = DeviceName
		s.Routes = prefixStrings(routes)
		s.Dns = &teleproto.SessionDNS{Nameserver: dnsIP.String(), Search: search, ClusterDomain: domain,
			RoutingDomains: set.Domains, PublicNamespaces: set.Public, NamespacesFrom: from}
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
	d.update(func(s *teleproto.DaemonStatus) { s.Device = devName })
	d.log.Info("device received", "device", devName, "routes", routes, "dnsMode", dnsMode)

	stateDir, _ := helper.StateDir()
	upstream, err := upstreamFor(dnsMode, stateDir, dnsIP)
	if err != nil {
		d.log.Warn("no upstream DNS for names that are not the cluster's: they are answered NXDOMAIN", "err", err)
	}
	dnsSrv := dns.NewServer(dns.Config{
		ClusterDomain: domain,
		Namespace:     ns,
		Search:        search,
		ReverseCIDRs:  routes,
		Cluster:       d.lookupCluster,
		Upstream:      upstreamExchange(upstream, dnsMode == resolver.ModeResolved),
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
	d.update(func(s *teleproto.DaemonStatus) {
		s.Phase = teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED
		s.HelperRequest = nil
		s.Dns.Mode = dnsMode
	})
	d.log.Info("connected", "namespace", ns, "routes", routes, "dnsMode", dnsMode, "upstream", upstream, "routingDomains", set.Domains)
	d.startNameCheck(dnsSrv, domain, dnsMode, devName, dnsIP.String())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st.Run(ctx) })
	g.Go(func() error { return d.keepAlive(ctx, info) })
	g.Go(func() error { return d.dialsLoop(ctx) })
	g.Go(func() error { return mem.run(ctx, 5*time.Second) })
	if loPC != nil {
		g.Go(func() error { return dnsSrv.ServeLoopback(ctx, loPC, loL) })
	}
	g.Go(func() error {
		d.recheckNames(ctx)
		return nil
	})
	if (src.listNS || src.listSlices) && dnsMode != resolver.ModeResolvConf && d.cfg.UpdateDNS != nil {
		g.Go(func() error { return d.watchRouting(ctx, domain, dnsMode, src, req) })
	}
	g.Go(func() error {
		select {
		case <-d.quit:
			d.log.Info("quit requested")
			d.setPhase(teleproto.ConnectPhase_CONNECT_PHASE_ENDING)
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

// remainInterval is how often the daemon sends Remain: five times within the
// manager's default heartbeat timeout (manager.DefaultHeartbeatTimeout,
// 10 s), which ends the session of a laptop gone silent.
const remainInterval = 2 * time.Second
