// Package manager is the in-cluster traffic manager: it serves laptops'
// sessions, tunnels and DNS lookups (teleproto.Manager) on the pod's loopback,
// reached only through the API server's port-forward.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// Defaults for Config's zero values.
const (
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultHeartbeatTimeout ends the session of a laptop gone silent
	// within a few seconds, and its intercepts with it; the daemon sends
	// Remain every 2 s (session.remainInterval), so five go missing first.
	// Dials for its intercepts fail over to the app much sooner, once its
	// Dials stream ends (see laptopLink).
	DefaultHeartbeatTimeout = 10 * time.Second
	DefaultResolvConf       = "/etc/resolv.conf"
	DefaultDialTimeout      = 10 * time.Second
	DefaultUDPIdleTimeout   = 60 * time.Second
	DefaultRefreshInterval  = 5 * time.Minute
)

// Config configures the manager. Zero values take the defaults above;
// Namespace and PodName default to the downward-API env vars POD_NAMESPACE
// and POD_NAME.
type Config struct {
	// ListenAddr must be a loopback address: port-forward dials localhost in
	// the pod's network namespace, and nothing else may reach the manager.
	ListenAddr string
	Namespace  string
	PodName    string
	// IdleTimeout: Run returns nil once no session has existed for this long.
	IdleTimeout time.Duration
	// HeartbeatTimeout: a session with no Remain for this long ends.
	HeartbeatTimeout time.Duration
	Client           kubernetes.Interface
	// ResolvConf is read once: its first nameserver is the cluster DNS server
	// and its search list gives the cluster domain.
	ResolvConf  string
	DialTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow with no datagram either way for this long.
	UDPIdleTimeout time.Duration
	// RefreshInterval is how often cluster info is discovered again; negative
	// disables refreshing.
	RefreshInterval time.Duration
	Logger          *slog.Logger
	Version         string
	// Image is the manager's own image, which the agents run too
	// (env TELE_IMAGE).
	Image string
	// ImagePullSecrets are the Secrets Image is pulled with (env
	// TELE_IMAGE_PULL_SECRETS, comma-separated). A pod whose
	// imagePullSecrets lack one cannot pull its agent: it is refused before
	// anything is added to it.
	ImagePullSecrets []string
	// AgentListenAddr is where agents reach the manager: the pod's address,
	// over TLS, token-authenticated (default ":8082").
	AgentListenAddr string
	// PodUID is the manager pod's UID (env POD_UID, from the downward
	// API), which a laptop's certificate proof signs.
	PodUID string
	// RESTConfig is the manager's in-cluster config: a laptop's bearer
	// token is asked about (SelfSubjectReview) against its server and CA,
	// with none of its credentials.
	RESTConfig *rest.Config
	// ClientCAFile holds the CAs that sign the cluster's client
	// certificates, as far as the manager knows them (default
	// DefaultClientCAFile).
	ClientCAFile string

	// tokenUser says who the API server takes a bearer token for; tests
	// set it, else it asks with RESTConfig.
	tokenUser func(context.Context, string) (identity.User, error)
}

// DefaultAgentPort is the port agents reach the manager on.
const DefaultAgentPort = teleproto.AgentPort

// DefaultListenAddr is where the manager serves laptops: its pod's
// loopback, which the laptops reach by port-forward.
var DefaultListenAddr = fmt.Sprintf("127.0.0.1:%d", teleproto.ManagerPort)

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.Namespace == "" {
		c.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if c.PodName == "" {
		c.PodName = os.Getenv("POD_NAME")
	}
	if c.PodUID == "" {
		c.PodUID = os.Getenv("POD_UID")
	}
	if c.ClientCAFile == "" {
		c.ClientCAFile = DefaultClientCAFile
	}
	if c.tokenUser == nil {
		c.tokenUser = tokenUserWith(c.RESTConfig)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.UDPIdleTimeout <= 0 {
		c.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Image == "" {
		c.Image = os.Getenv("TELE_IMAGE")
	}
	if c.ImagePullSecrets == nil {
		for n := range strings.SplitSeq(os.Getenv("TELE_IMAGE_PULL_SECRETS"), ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.ImagePullSecrets = append(c.ImagePullSecrets, n)
			}
		}
	}
	if c.AgentListenAddr == "" {
		c.AgentListenAddr = fmt.Sprintf(":%d", DefaultAgentPort)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// laptopKeepalive finds a laptop's connection that died without a FIN (the
// port-forward's far end gone silent): the server pings after 2 s without a
// frame from the laptop and closes the connection when no answer comes in
// 3 s more, which ends its Dials stream, so its intercepts fail over to the
// app within about 5 s. A busy connection is never pinged (any frame counts
// as life), and the laptop answers pings whatever it is doing, so only a
// dead link pays. The ping goes through the API server's port-forward,
// whose round trip is milliseconds; 3 s leaves room for a loaded machine.
var laptopKeepalive = keepalive.ServerParameters{Time: 2 * time.Second, Timeout: 3 * time.Second}

// Run serves the Manager service on cfg.ListenAddr until ctx is done (it then
// returns ctx's error) or no session has existed for cfg.IdleTimeout (it then
// returns nil, so the Job completes and its TTL removes it).
func Run(ctx context.Context, cfg Config) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	cfg = s.cfg
	if err := checkLoopback(cfg.ListenAddr); err != nil {
		return err
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	gs := grpc.NewServer(
		// Stop then waits for the handlers too, so none outlives Run.
		grpc.WaitForHandlers(true),
		// Fewer, larger writes into the port-forward (see managerclient).
		grpc.WriteBufferSize(256<<10),
		grpc.ReadBufferSize(256<<10),
		experimental.BufferPool(tunnel.BufferPool),
		grpc.ForceServerCodecV2(tunnel.Codec),
		grpc.InitialWindowSize(tunnel.StreamWindow),
		grpc.InitialConnWindowSize(tunnel.ConnWindow),
		// Laptops ping to notice a dead port-forward; don't punish them for it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(laptopKeepalive),
		grpc.UnaryInterceptor(s.skewHeaders),
	)
	teleproto.RegisterManagerServer(gs, s)

	// Agents reach the manager on the pod's address, through a Service; a
	// separate server that serves only AgentService, over TLS with the
	// namespace's CA (see agentca.go), and only with the token.
	if err := s.setupAgents(ctx, s.ownLabels(ctx)); err != nil {
		lis.Close()
		return err
	}
	alis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.AgentListenAddr)
	if err != nil {
		lis.Close()
		return fmt.Errorf("listen for agents on %s: %w", cfg.AgentListenAddr, err)
	}
	ags := grpc.NewServer(grpc.WaitForHandlers(true), grpc.StreamInterceptor(s.authStream),
		grpc.Creds(credentials.NewTLS(s.agentCA.serverTLS())),
		experimental.BufferPool(tunnel.BufferPool), grpc.ForceServerCodecV2(tunnel.Codec),
		grpc.InitialWindowSize(tunnel.StreamWindow), grpc.InitialConnWindowSize(tunnel.ConnWindow),
		// Agents ping every 5 s to notice a vanished manager.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 4 * time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Unimplemented, "agents use streams only")
		}))
	teleproto.RegisterAgentServiceServer(ags, &agentServer{s: s})
	s.ctl = newController(s)
	cfg.Logger.InfoContext(ctx, "manager serving", "addr", lis.Addr().String(),
		"namespace", cfg.Namespace, "pod", cfg.PodName, "version", cfg.Version)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC on %s: %w", cfg.ListenAddr, err)
		}
		return nil
	})
	g.Go(func() error {
		if err := ags.Serve(alis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve agents on %s: %w", cfg.AgentListenAddr, err)
		}
		return nil
	})
	rctx, stopReconcile := context.WithCancel(gctx)
	g.Go(func() error { return s.ctl.run(rctx) })
	// The controller's restores outlive g: Close removes the intercepts
	// after it, and waits for their Services to be restored.
	restores := make(chan struct{})
	go func() {
		defer close(restores)
		s.ctl.runRestores(s.restore)
	}()
	g.Go(func() error {
		// Returns nil on idle, an error when gctx ends.
		err := s.Run(gctx)
		// First, so that the handlers gs.Stop waits for (a CreateIntercept
		// undoing itself) do not wait for agents ags.Stop cuts off.
		s.stopDrain()
		// Stop, not GracefulStop: open tunnels would hold a graceful stop
		// forever, and every session has ended or is being abandoned.
		stopReconcile()
		ags.Stop()
		gs.Stop()
		return err
	})
	err = g.Wait()
	// Before returning: on SIGTERM the process exits once Run returns, and
	// Close has the controller restore the Services the intercepts
	// retargeted.
	s.Close()
	s.ctl.stopRestores()
	<-restores
	if err == nil {
		cfg.Logger.InfoContext(ctx, "manager idle, exiting", "idle_timeout", cfg.IdleTimeout)
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("listen address %q: must be a loopback address, so only port-forward can reach the manager", addr)
	}
	return nil
}
