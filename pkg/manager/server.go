package manager

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/discovery"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Server implements teleproto.ManagerServer. Its sessions expire and its idle
// exit is decided only while Server.Run runs; Close ends every session.
type Server struct {
	teleproto.UnimplementedManagerServer

	cfg      Config
	log      *slog.Logger
	resolver discovery.Resolver
	now      func() time.Time
	// clock ticks the cluster-info refresh; tests step a fake one.
	clock clock.WithTicker
	// refreshed, when set (by tests), is told the outcome of each refresh.
	refreshed func(error)

	// life is the parent of every session's context; Close cancels it.
	life     context.Context
	stopLife context.CancelFunc
	// drain bounds the waits for agents to drop a removed intercept.
	// Shutdown stops it first: agents cut off from the manager drop every
	// route themselves (they fail open), and waiting for an agent that can
	// no longer reach us would use up the pod's grace period.
	drain     context.Context
	stopDrain context.CancelFunc
	// restore is the context of the controller's restores (a Service
	// retargeted by the Service mechanism, put back) and of the removals'
	// waits for them. It outlives life: Close cancels it only once the
	// cleanup has had shutdownTimeout.
	restore     context.Context
	stopRestore context.CancelFunc
	// cleanups counts the goroutines that remove an ended session's
	// intercepts; Close waits for them.
	cleanups sync.WaitGroup
	// flows counts tunnel goroutines that can only finish after their gRPC
	// handler has returned (tunnel.ServerStream); Close waits for them.
	flows sync.WaitGroup

	sessions *sessionRegistry

	infoMu sync.Mutex
	info   *teleproto.ClusterInfo

	// table is the intercepts, by id (their names are unique per session
	// only), and the decisions taken from them; imu guards it and the
	// Intercepts in it.
	imu   sync.Mutex
	table *state.Table
	// agents are the registered agents, by pod name, and routeVersion the
	// version counter of their routes.
	agents       *agentRegistry
	routeVersion atomic.Uint64
	// ctl is the one writer: it attaches agents, retargets Services and
	// keeps routes current; nil in tests that drive the Server alone. Set
	// before serving starts.
	ctl        *controller
	agentToken string
	// agentCA signs the certificate the agents' port serves.
	agentCA *agentCA
	// tokenID is the UID of the token's Secret: an agent whose spec
	// records another holds the token of an earlier install.
	tokenID string
	// agentHost and agentIP are the Service's DNS name and ClusterIP with
	// the port (see agentAddress).
	agentHost string
	agentIP   string
	// changes wakes the waits for agents, pods and intercepts.
	changes *changes
	// dials are the agents' connections waiting for a laptop's answer.
	dials *dialBroker

	// nmu guards the Challenge nonces and the cluster's client CAs, as
	// last read (see clientCAs).
	nmu      sync.Mutex
	nonces   identity.Nonces
	cas      *x509.CertPool
	casFrom  string
	casUntil time.Time
}

type session struct {
	id string
	// user is who the session proved it is (provenBy says how): what RBAC
	// is asked about, and what list shows.
	user     identity.User
	provenBy string
	// hostname and hostUser are where the laptop says it is: hints for
	// people, never an identity.
	hostname string
	hostUser string
	version  string // the laptop's build (ArriveRequest.client_version)
	ctx      context.Context
	cancel   context.CancelCauseFunc
	lastSeen time.Time
	// dials are the agents' connection requests for this laptop.
	dials chan *teleproto.DialRequest
	// link says whether the laptop has a Dials stream open to take them.
	link *laptopLink
}

var (
	errSessionEnded = errors.New("session ended")
	errIdle         = errors.New("manager idle, shutting down")
)

// NewServer checks cfg, fills in defaults and reads cfg.ResolvConf. It does
// not call the API server: cluster info is discovered by Run, or by the first
// Arrive if Run has not yet done so.
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Client == nil {
		return nil, errors.New("manager config: a Kubernetes client is required")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("manager config: namespace is required (set POD_NAMESPACE from the downward API)")
	}
	r, err := discovery.ReadResolvConf(cfg.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("manager config: %w", err)
	}
	life, stop := context.WithCancel(context.Background())
	drain, stopDrain := context.WithCancel(context.Background())
	restore, stopRestore := context.WithCancel(context.Background())
	changes := newChanges()
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		resolver:    r,
		now:         time.Now,
		clock:       clock.RealClock{},
		life:        life,
		stopLife:    stop,
		drain:       drain,
		stopDrain:   stopDrain,
		restore:     restore,
		stopRestore: stopRestore,

		table:   state.NewTable(rand.Text),
		dials:   newDialBroker(),
		changes: changes,
		agents:  newAgentRegistry(changes),
	}
	s.sessions = newSessionRegistry(s.now(), &s.cleanups)
	return s, nil
}

// Run expires sessions past the heartbeat timeout and refreshes cluster info
// until ctx is done (returning its error) or no session has existed for the
// idle timeout (returning nil).
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if _, err := s.clusterInfo(gctx); err != nil {
			// Arrive will try again: ctx ended, or the API server did not answer.
			s.log.WarnContext(gctx, "discover cluster info", "err", err)
		}
		if s.cfg.RefreshInterval < 0 {
			return nil
		}
		t := s.clock.NewTicker(s.cfg.RefreshInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-t.C():
				err := s.refreshClusterInfo(gctx)
				if s.refreshed != nil {
					s.refreshed(err)
				}
			}
		}
	})
	// reap's errIdle also stops the refresher.
	g.Go(func() error { return s.reap(gctx) })
	err := g.Wait()
	if errors.Is(err, errIdle) {
		return nil
	}
	return err
}

// reap ends expired sessions and returns errIdle once the manager has been
// without sessions for the idle timeout.
func (s *Server) reap(ctx context.Context) error {
	tick := min(s.cfg.HeartbeatTimeout, s.cfg.IdleTimeout) / 4
	tick = max(min(tick, time.Second), 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		expired, idle := s.sessions.reap(s.now(), s.cfg.HeartbeatTimeout, s.cfg.IdleTimeout)
		for _, ss := range expired {
			s.end(ctx, ss, "heartbeat timeout")
		}
		if idle {
			return errIdle
		}
	}
}

// shutdownTimeout bounds Close's cleanup: well under the manager pod's
// terminationGracePeriodSeconds (5 s, see managerclient), after which the
// kubelet kills it, so that a SIGTERM leaves no Service retargeted.
const shutdownTimeout = 3 * time.Second

// Close ends every session and, before their contexts end, removes every
// intercept, waiting for the controller to restore the Services they
// retargeted (its restores still run: Run stops them after Close); it
// gives that shutdownTimeout, then cancels the flows and waits for their
// goroutines. Call it after the gRPC servers have stopped. Close may be
// called again.
func (s *Server) Close() {
	s.stopDrain()
	for _, ss := range s.sessions.close(s.now()) {
		s.end(context.Background(), ss, "manager stopping")
	}
	// No session is left and none can arrive: no cleanup starts after this
	// Wait begins.
	t := time.AfterFunc(shutdownTimeout, s.stopRestore)
	s.cleanups.Wait()
	// What no session's cleanup saw (an intercept a CreateIntercept added as
	// its session ended), so that nothing stays retargeted.
	s.imu.Lock()
	left := s.table.NotRemoving()
	s.imu.Unlock()
	for _, id := range left {
		s.removeIntercept(id, "manager stopping")
	}
	if !t.Stop() {
		s.log.Warn("manager stopping: cleanup cut short; kubectl tele uninstall restores the Services left retargeted", "timeout", shutdownTimeout)
	}
	s.stopRestore()
	s.stopLife()
	s.flows.Wait()
}

// end ends ss, which the registry removed (counting it in s.cleanups): its
// context, and, in a goroutine Close waits for, its intercepts.
func (s *Server) end(ctx context.Context, ss *session, reason string) {
	ss.cancel(fmt.Errorf("%w: %s", errSessionEnded, reason))
	// API calls: owned, so Close waits for them.
	go func() {
		defer s.cleanups.Done()
		s.endSessionIntercepts(ss)
	}()
	s.log.InfoContext(ctx, "session departed", "session", ss.id, "user", ss.user.Name, "host", ss.host(), "reason", reason)
}

// lookup returns the live session with this ID, ending it first if its
// heartbeat has lapsed and the reaper has not yet noticed.
func (s *Server) lookup(ctx context.Context, id string) (*session, error) {
	ss, expired := s.sessions.lookup(id, s.now(), s.cfg.HeartbeatTimeout)
	if expired != nil {
		s.end(ctx, expired, "heartbeat timeout")
	}
	if ss == nil {
		return nil, status.Errorf(codes.NotFound, "session %q ended; reconnect", id)
	}
	return ss, nil
}

// Arrive implements teleproto.ManagerServer.
func (s *Server) Arrive(ctx context.Context, req *teleproto.ArriveRequest) (*teleproto.ArriveResponse, error) {
	const want = teleproto.CurrentProtocolVersion
	if got := req.GetProtocolVersion(); got != want {
		return nil, status.Errorf(codes.FailedPrecondition,
			"protocol version mismatch: the plugin (version %q) speaks %s (%d) but this manager (version %q) speaks %s (%d); "+
				"use a kubectl-tele of version %q, or end its sessions and run kubectl tele uninstall -n %s so that connect starts a manager matching the plugin",
			req.GetClientVersion(), got, int32(got), s.cfg.Version, want, int32(want), s.cfg.Version, s.cfg.Namespace)
	}
	if ns := req.GetNamespace(); ns != "" && ns != s.cfg.Namespace {
		return nil, status.Errorf(codes.InvalidArgument, "this manager serves namespace %s, not %s", s.cfg.Namespace, ns)
	}
	u, provenBy, err := s.authenticate(ctx, req.GetProof())
	if err != nil {
		s.log.WarnContext(ctx, "session refused", "host", req.GetUser()+"@"+req.GetHostname(), "err", status.Convert(err).Message())
		return nil, err
	}
	info, err := s.clusterInfo(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "discover cluster info: %v", err)
	}

	sctx, cancel := context.WithCancelCause(s.life)
	ss := &session{
		id:       rand.Text(),
		user:     u,
		provenBy: provenBy,
		hostname: req.GetHostname(),
		hostUser: req.GetUser(),
		version:  req.GetClientVersion(),
		ctx:      sctx,
		cancel:   cancel,
		lastSeen: s.now(),
		dials:    make(chan *teleproto.DialRequest, 64),
		link:     newLaptopLink(),
	}
	if !s.sessions.add(ss) {
		cancel(errIdle)
		return nil, status.Error(codes.Unavailable, "manager is shutting down; reconnect to start a new one")
	}
	s.log.InfoContext(ctx, "session arrived", "session", ss.id, "user", u.Name, "uid", u.UID, "groups", u.Groups,
		"proven_by", provenBy, "host", ss.host(), "client_version", req.GetClientVersion())

	return &teleproto.ArriveResponse{
		ProtocolVersion:    want,
		ManagerVersion:     s.cfg.Version,
		SessionId:          ss.id,
		Cluster:            info,
		HeartbeatTimeoutMs: s.cfg.HeartbeatTimeout.Milliseconds(),
		Identity:           &teleproto.Identity{Username: u.Name, Uid: u.UID, Groups: u.Groups},
		ProvenBy:           provenBy,
	}, nil
}

// host is where the session's laptop says it is: user@host, a hint.
func (ss *session) host() string { return ss.hostUser + "@" + ss.hostname }

// skewHeaders sends teleproto's HeaderProtocol, HeaderVersion and
// HeaderSessions with every unary response, errors included, so that a laptop
// of another version learns what it talks to from any call.
func (s *Server) skewHeaders(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	// After the handler: an Arrive or Depart counts itself.
	n := s.sessions.count()
	md := metadata.Pairs(
		teleproto.HeaderProtocol, teleproto.FormatProtocol(teleproto.CurrentProtocolVersion),
		teleproto.HeaderVersion, s.cfg.Version,
		teleproto.HeaderSessions, strconv.Itoa(n))
	if herr := grpc.SetHeader(ctx, md); herr != nil {
		s.log.DebugContext(ctx, "set version headers", "err", herr)
	}
	return resp, err
}

// Remain implements teleproto.ManagerServer.
func (s *Server) Remain(ctx context.Context, req *teleproto.SessionRequest) (*teleproto.RemainResponse, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	s.sessions.touch(ss, s.now())
	return &teleproto.RemainResponse{}, nil
}

// Depart implements teleproto.ManagerServer.
func (s *Server) Depart(ctx context.Context, req *teleproto.SessionRequest) (*teleproto.DepartResponse, error) {
	ss := s.sessions.remove(req.GetSessionId(), s.now())
	if ss == nil {
		return nil, status.Errorf(codes.NotFound, "session %q ended; reconnect", req.GetSessionId())
	}
	s.end(ctx, ss, "departed")
	return &teleproto.DepartResponse{}, nil
}

// clusterInfo returns the cached cluster info, discovering it if needed.
func (s *Server) clusterInfo(ctx context.Context) (*teleproto.ClusterInfo, error) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if s.info != nil {
		return s.info, nil
	}
	info, err := s.discover(ctx)
	if err != nil {
		return nil, err
	}
	s.info = info
	return info, nil
}

// refreshClusterInfo discovers cluster info again. Only a complete read
// replaces what is known: when the API server did not answer (an outage, a
// restart), the fallbacks Discover found instead ("service-cidr:unknown")
// would give every laptop connecting until the next refresh a route to the
// DNS server alone, so the last good value stays, and the log says so.
func (s *Server) refreshClusterInfo(ctx context.Context) error {
	info, err := s.discover(ctx)
	if err != nil {
		s.infoMu.Lock()
		kept := s.info
		s.infoMu.Unlock()
		s.log.WarnContext(ctx, "refresh cluster info failed; keeping the last good value", "err", err,
			"service_cidrs", kept.GetServiceCidrs(), "pod_cidrs", kept.GetPodCidrs(), "discovery", kept.GetDiscovery())
		return err
	}
	s.infoMu.Lock()
	s.info = info
	s.infoMu.Unlock()
	return nil
}

func (s *Server) discover(ctx context.Context) (*teleproto.ClusterInfo, error) {
	d, err := discovery.Discover(ctx, discovery.Config{
		Client:    s.cfg.Client,
		Namespace: s.cfg.Namespace,
		Resolver:  s.resolver,
		Logger:    s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("discover cluster info from namespace %s: %w", s.cfg.Namespace, err)
	}
	info := &teleproto.ClusterInfo{
		ClusterDomain: d.ClusterDomain,
		DnsServer:     d.DNSServer,
		Discovery:     d.Discovery,
	}
	for _, p := range d.ServiceCIDRs {
		info.ServiceCidrs = append(info.ServiceCidrs, p.String())
	}
	for _, p := range d.PodCIDRs {
		info.PodCidrs = append(info.PodCidrs, p.String())
	}
	s.log.InfoContext(ctx, "cluster info", "domain", info.ClusterDomain, "dns", info.DnsServer,
		"service_cidrs", info.ServiceCidrs, "pod_cidrs", info.PodCidrs, "discovery", info.Discovery)
	return info, nil
}
