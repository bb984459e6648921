// Package agent is the traffic agent: a process in an ephemeral container of
// an intercepted pod, sharing the pod's network namespace. It keeps a stream
// to the manager, listens for each intercepted port, redirects the port to
// itself (nftables, where it has NET_ADMIN) and routes request by request:
// matching requests to the laptop that owns the intercept, the rest to the
// app. When the manager is gone it removes its redirects, so the app serves
// everything again; when the agent dies the kernel removes them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/redirect"
	"github.com/kubectl-tele/kubectl-tele/pkg/agent/router"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// redirector is what the agent needs of *redirect.Redirector.
type redirector interface {
	Set(rules []redirect.Rule) error
	Rules() []redirect.Rule
	Bypassing(port uint16, resetIdle time.Duration) (redirect.Conns, error)
}

// idleBeforeReset is how long a connection that bypasses the redirect must
// have been quiet, with nothing in flight, before --reset-idle-connections
// resets it: long enough that no request is under way on it, as an HTTP
// server's idle timeout judges.
const idleBeforeReset = time.Second

// An agent of a new pod (Config.NewPod) resets, for newPodWindow after it
// starts, the connections that reached the app before its redirect, as
// soon as each has been quiet for newPodQuiet with nothing in flight: the
// kubelet may start the app and let it become Ready a moment before the
// agent, and a pooled client connection opened in that moment would never
// pass the agent. The pod is seconds old; its clients see what a fresh pod
// shows anyway, and an HTTP client retries a request that meets a reset
// connection it had reused.
const (
	newPodWindow = 30 * time.Second
	newPodQuiet  = 20 * time.Millisecond
	newPodPoll   = 50 * time.Millisecond
)

// Config is what the agent needs; the manager sets it in the container.
type Config struct {
	ManagerAddr string
	// ManagerCA is the namespace's CA certificate (PEM), which the
	// manager's must be signed by.
	ManagerCA []byte
	Token     string
	Pod       string
	Namespace string
	Container string // the agent's own container, named in its hello
	// NewPod: the pod started just before the agent (see newPodWindow).
	NewPod  bool
	Version string
	Logger  *slog.Logger
}

// Agent is a running agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	red    redirector // nil without NET_ADMIN
	client teleproto.AgentServiceClient
	creds  *managerCreds

	mu    sync.Mutex
	ports map[uint32]*port // by app port
	// held are the app ports that have had --http-match routes since the
	// manager stream came up. Their redirect stays when the routes go: the
	// router then passes every request to the app, and a client's pooled
	// connection opened between two intercepts reaches the agent, so it
	// follows the next one (the redirect takes new connections only).
	// Losing the manager ends the hold: the agent fails open.
	held map[uint32]bool
	// resetting holds the ports a resetEarly goroutine works on.
	resetting map[uint16]bool
	started   time.Time
	group     *errgroup.Group
	gctx      context.Context
	// serveCtx ends the routers, once the redirect rules are gone (see Run).
	serveCtx context.Context
	// stopping: the agent is on its way out; no redirect rule is set again.
	stopping bool
}

// port is one app port the agent serves: its listener and router.
type port struct {
	agentPort uint32
	router    *router.Router
}

// errRetired ends an agent that the manager refused for good.
var errRetired = errors.New("refused by the manager")

// Run runs the agent until ctx ends, or until the manager refuses it for
// good (then it returns nil, and its container completes).
func Run(ctx context.Context, cfg Config) error {
	creds, err := newManagerCreds(cfg.ManagerCA, cfg.Namespace)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// One agent at a time in a pod: a newer one waits here for the one it
	// takes over from to exit, before it touches the redirect table or the
	// agent ports.
	turn, err := waitTurn(ctx, cfg.Logger)
	if err != nil {
		return err
	}
	defer turn.Close()
	// On the way out, in this order: the redirect rules go, so that new
	// connections reach the app (one sent to a closed agent port would be
	// refused while the app serves on: seen in rollouts); the routers close
	// the connections they hold (serveCtx); the table goes last, after
	// g.Wait. The connections the redirect sent to the agent are
	// translated by the table's NAT chain for as long as they live: with
	// the table gone first, the agent's answers and FIN went out from its
	// own port, and clients hung until their timeout (seen in rollouts: a
	// request 10 s without an answer; TestRedirectedConnectionsNeedTheTable
	// in pkg/agent/redirect shows the kernel's side).
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	a := &Agent{cfg: cfg, log: cfg.Logger, creds: creds, ports: map[uint32]*port{}, held: map[uint32]bool{}, resetting: map[uint16]bool{}, started: time.Now(), serveCtx: serveCtx}
	red := a.openRedirect(ctx)
	if red != nil {
		a.red = red
		defer red.Close()
	}
	conn, err := dialManager(cfg.ManagerAddr, creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	a.client = teleproto.NewAgentServiceClient(conn)
	g, gctx := errgroup.WithContext(ctx)
	a.group, a.gctx = g, gctx
	g.Go(func() error { return a.watchLoop(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		a.stopRedirecting()
		stopServing()
		return nil
	})
	if err := g.Wait(); !errors.Is(err, errRetired) {
		return err
	}
	return nil
}

// dialManager makes the agent's client connection to the manager at addr.
func dialManager(addr string, creds *managerCreds) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		// gRPC's dns resolver resolves again at most every 30 s, and backs
		// off to 2 min while a name does not resolve (between uninstall and
		// connect the Service is gone). Dialing the name instead resolves it
		// on every attempt, so the agent finds the next manager's Service
		// within the connect backoff.
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}),
		// TLS with the namespace's CA; the token, inside it, authenticates
		// the agent.
		grpc.WithTransportCredentials(creds),
		experimental.WithBufferPool(tunnel.BufferPool),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(tunnel.Codec)),
		grpc.WithInitialWindowSize(tunnel.StreamWindow),
		grpc.WithInitialConnWindowSize(tunnel.ConnWindow),
		// A manager pod that vanishes sends no FIN: pings notice within
		// seconds, so the agent fails open and finds the next manager soon.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		// While a new manager starts, retry often (gRPC's default backoff
		// grows to minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("agent: manager address %s: %w", addr, err)
	}
	return conn, nil
}

// openRedirect opens the pod's redirect table, and nil where the agent
// cannot (no NET_ADMIN). It waits while another agent owns the table: one
// older than the turn that waitTurn takes, which holds the table until it
// exits.
func (a *Agent) openRedirect(ctx context.Context) *redirect.Redirector {
	for logged := false; ; logged = true {
		red, err := redirect.Open(ctx, redirect.Options{Logger: a.log})
		switch {
		case err == nil:
			return red
		case !errors.Is(err, redirect.ErrOwnedByAnother) || ctx.Err() != nil:
			a.log.Warn("no nftables redirect (the Service mechanism still works)", "err", err)
			return nil
		case !logged:
			a.log.Info("waiting for the earlier agent in this pod to exit: it owns the redirect table", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (a *Agent) authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, teleproto.AgentTokenHeader, a.cfg.Token)
}

// watchLoop keeps the Watch stream, and fails open while it is down.
func (a *Agent) watchLoop(ctx context.Context) error {
	for backoff := 200 * time.Millisecond; ; backoff = min(backoff*2, 2*time.Second) {
		err := a.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// A manager that is not the namespace's never gets the token.
		if verr := a.creds.refusal(); verr != nil {
			a.log.Warn("the manager's certificate is not signed by this namespace's CA for its name: refusing it, exiting; traffic goes to the app", "err", verr)
			return fmt.Errorf("%w: %w", errRetired, verr)
		}
		// The manager refused this agent for good: the token of another
		// install (kubectl tele uninstall deleted this one's), or a newer
		// agent in the pod takes over. Exiting drops the redirect with the
		// process, and frees the agent ports for the next agent.
		if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
			a.log.Warn("the manager refused this agent: exiting; traffic goes to the app", "err", err)
			return fmt.Errorf("%w: %w", errRetired, err)
		}
		a.log.Warn("lost the manager; traffic goes to the app until it is back", "err", err)
		a.failOpen()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func (a *Agent) watch(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := a.client.Watch(a.authed(ctx))
	if err != nil {
		return err
	}
	err = st.Send(&teleproto.AgentReport{Hello: &teleproto.AgentHello{
		ProtocolVersion: teleproto.CurrentAgentProtocolVersion,
		Pod:             a.cfg.Pod, Namespace: a.cfg.Namespace, Container: a.cfg.Container,
		Version: a.cfg.Version, CanRedirect: a.red != nil,
	}})
	if err != nil {
		// The manager's refusal, if any, is the stream's status.
		if _, rerr := st.Recv(); rerr != nil {
			return rerr
		}
		return err
	}
	a.log.Info("connected to the manager", "addr", a.cfg.ManagerAddr)
	var sendMu sync.Mutex // a stream's Send is not safe for concurrent use
	sendReport := func(r *teleproto.AgentReport) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return st.Send(r)
	}
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		a.reportWiretaps(ctx, sendReport)
	}()
	for {
		u, err := st.Recv()
		if err != nil {
			return err
		}
		if v := u.GetProtocolVersion(); v != teleproto.CurrentAgentProtocolVersion {
			return fmt.Errorf("the manager speaks agent protocol %d, this agent (kubectl-tele %s) agent protocol %d: restart the pod so that it gets the manager's agent",
				int32(v), a.cfg.Version, int32(teleproto.CurrentAgentProtocolVersion))
		}
		conns, err := a.apply(u.GetRoutes())
		if err != nil {
			a.log.Error("apply routes", "version", u.GetVersion(), "err", err)
			continue // not acknowledged: the manager reports the timeout
		}
		if err := sendReport(&teleproto.AgentReport{Applied: u.GetVersion(), Connections: conns, Wiretaps: a.wiretapCounters()}); err != nil {
			return err
		}
	}
}

// apply makes the listeners, routers and redirects match routes, and
// reports, per redirected port, the connections that bypass the redirect
// (and those it reset, where a route asks).
func (a *Agent) apply(routes []*teleproto.AgentRoute) ([]*teleproto.PortConnections, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return nil, errStopping
	}
	byPort := map[uint32][]router.Route{}
	var rules []redirect.Rule
	redirected := map[uint32]bool{}
	resetIdle := map[uint32]bool{}
	for _, r := range routes {
		m, err := match.Parse(r.GetHttpMatch())
		if err != nil {
			return nil, fmt.Errorf("intercept %s: %w", r.GetIntercept(), err)
		}
		p, err := a.ensurePort(r.GetPort(), r.GetAgentPort())
		if err != nil {
			return nil, err
		}
		if r.GetResetIdleConnections() {
			resetIdle[r.GetPort()] = true
		}
		wiretap := r.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
		rt := router.Route{ID: r.GetIntercept(), Match: m, Dial: a.dialer(r.GetIntercept()), LocalTLS: r.GetLocalTls(), Wiretap: wiretap}
		if rt.TLS, err = routeCertificate(r); err != nil {
			return nil, err
		}
		byPort[r.GetPort()] = append(byPort[r.GetPort()], rt)
		nft := r.GetMech() == teleproto.Mechanism_MECHANISM_NFTABLES
		if nft && !redirected[r.GetPort()] {
			redirected[r.GetPort()] = true
			rules = append(rules, redirect.Rule{Port: uint16(r.GetPort()), ToPort: uint16(p.agentPort)})
		}
		if nft && (len(r.GetHttpMatch()) > 0 || wiretap) {
			a.held[r.GetPort()] = true
		}
	}
	for ap := range a.held {
		if p := a.ports[ap]; p != nil && !redirected[ap] {
			rules = append(rules, redirect.Rule{Port: uint16(ap), ToPort: uint16(p.agentPort)})
		}
	}
	slices.SortFunc(rules, func(x, y redirect.Rule) int { return int(x.Port) - int(y.Port) })
	// Routers first, then redirects: a new redirect meets a ready router,
	// and a removed one stops sending before its routes go.
	for ap, p := range a.ports {
		p.router.SetRoutes(byPort[ap])
	}
	if a.red == nil {
		if len(rules) > 0 {
			return nil, errors.New("cannot redirect without NET_ADMIN")
		}
		return nil, nil
	}
	if err := a.red.Set(rules); err != nil {
		return nil, err
	}
	var conns []*teleproto.PortConnections
	for _, rule := range rules {
		var idle time.Duration
		if resetIdle[uint32(rule.Port)] {
			idle = idleBeforeReset
		}
		c, err := a.red.Bypassing(rule.Port, idle)
		if err != nil {
			// Only a report: the redirect itself is in place.
			a.log.Warn("count the connections that bypass the redirect", "port", rule.Port, "err", err)
		}
		if c.Bypassing > 0 {
			a.log.Info("connections opened before the redirect still reach the app", "port", rule.Port, "connections", c.Bypassing, "reset", c.Reset)
		}
		if c.Bypassing > c.Reset && a.cfg.NewPod && time.Since(a.started) < newPodWindow && !a.resetting[rule.Port] {
			a.resetting[rule.Port] = true
			a.group.Go(func() error { a.resetEarly(a.gctx, rule.Port); return nil })
		}
		conns = append(conns, &teleproto.PortConnections{Port: uint32(rule.Port), Bypassing: uint32(c.Bypassing), ResetConnections: uint32(c.Reset)})
	}
	return conns, nil
}

// resetEarly resets, until none is left or newPodWindow has passed since
// the agent started, the connections to port that bypass its redirect, each
// once it is quiet. It stops when the port is no longer redirected: the app
// then rightly serves connections directly.
func (a *Agent) resetEarly(ctx context.Context, port uint16) {
	defer func() {
		a.mu.Lock()
		delete(a.resetting, port)
		a.mu.Unlock()
	}()
	t := time.NewTicker(newPodPoll)
	defer t.Stop()
	total := 0
	for time.Since(a.started) < newPodWindow {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		if !slices.ContainsFunc(a.red.Rules(), func(r redirect.Rule) bool { return r.Port == port }) {
			a.mu.Unlock()
			return
		}
		c, err := a.red.Bypassing(port, newPodQuiet)
		a.mu.Unlock()
		total += c.Reset
		if err == nil && c.Bypassing == c.Reset {
			a.log.Info("new pod: reset the connections that reached the app before the redirect", "port", port, "reset", total)
			return
		}
	}
	a.log.Warn("new pod: connections that reached the app before the redirect are still busy", "port", port, "reset", total)
}

// drainTimeout is how long the routers let the HTTP requests in flight
// finish once the agent is told to stop (the pod terminates, or a newer
// agent takes over), after the redirect has stopped taking new
// connections: well within the 30 s a pod gets by default, and a newer
// agent waits at most this long for its turn.
const drainTimeout = 5 * time.Second

// errStopping: routes that arrive while the agent stops are not applied.
var errStopping = errors.New("agent stopping")

// stopRedirecting sends every new connection to the app from now on, for
// good, and keeps the table until Run ends (see there).
func (a *Agent) stopRedirecting() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping = true
	if a.red == nil {
		return
	}
	if err := a.red.Set(nil); err != nil {
		a.log.Error("remove the redirect rules", "err", err)
	}
}

// failOpen drops every route and redirect: the app gets all new connections.
func (a *Agent) failOpen() {
	a.mu.Lock()
	clear(a.held)
	a.mu.Unlock()
	// Stopping has removed every redirect rule already.
	if _, err := a.apply(nil); err != nil && !errors.Is(err, errStopping) {
		a.log.Error("fail open", "err", err)
	}
}

// ensurePort starts the listener and router of an app port once; they stay
// (as a transparent pass-through to the app) when the port's routes go.
func (a *Agent) ensurePort(appPort, agentPort uint32) (*port, error) {
	if p, ok := a.ports[appPort]; ok {
		return p, nil
	}
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", agentPort))
	if err != nil {
		return nil, fmt.Errorf("listen on agent port %d for app port %d: %w", agentPort, appPort, err)
	}
	r := router.New(router.Config{
		AppAddr:      fmt.Sprintf("127.0.0.1:%d", appPort),
		Logger:       a.log.With("port", appPort),
		DrainTimeout: drainTimeout,
	})
	p := &port{agentPort: agentPort, router: r}
	a.ports[appPort] = p
	a.group.Go(func() error { return r.Serve(a.serveCtx, l) })
	a.log.Info("serving app port", "port", appPort, "agentPort", agentPort)
	return p, nil
}

// dialer opens a connection to the laptop owning intercept, through the
// manager: it returns once the laptop has dialed its local port, or with the
// laptop's error (so the router answers 502 at once). When no laptop can
// take the connection (the manager says CLOSE_REASON_LAPTOP_GONE, or the
// manager itself cannot be reached) the error wraps router.ErrLaptopGone,
// and the router serves the traffic with the app.
func (a *Agent) dialer(intercept string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		// Not under a.gctx, which ends at SIGTERM: a request in flight
		// then finishes in the routers' drain. The stream ends with the
		// conn (its Close cancels it), at the latest with the manager
		// connection at the end of Run.
		sctx, cancel := context.WithCancel(a.authed(context.WithoutCancel(a.gctx)))
		st, err := a.client.Connect(sctx)
		if err == nil {
			err = st.Send(teleproto.InterceptedOpen(intercept))
		}
		if err != nil {
			cancel()
			// No manager, no laptop: the agent fails open once the
			// Watch stream notices, and until then the app serves.
			return nil, fmt.Errorf("intercept %s: reach the manager: %w: %w", intercept, router.ErrLaptopGone, err)
		}
		type result struct {
			m   *teleproto.Frame
			err error
		}
		first := make(chan result, 1)
		go func() { m, err := st.Recv(); first <- result{m, err} }()
		select {
		case r := <-first:
			switch {
			case r.err != nil:
				cancel()
				return nil, fmt.Errorf("intercept %s: the manager's stream ended: %w: %w", intercept, router.ErrLaptopGone, r.err)
			case r.m.GetClose() != nil:
				cancel()
				return nil, closeError(intercept, r.m.GetClose())
			}
			if err := teleproto.AckOf(r.m); err != nil {
				cancel()
				return nil, fmt.Errorf("intercept %s: the laptop's answer: %w", intercept, err)
			}
			return tunnel.NewConn(st, cancel), nil
		case <-ctx.Done():
			cancel()
			return nil, fmt.Errorf("intercept %s: the laptop did not answer: %w", intercept, ctx.Err())
		}
	}
}

// closeError is the error of a dial the manager or the laptop refused, by
// its typed reason: LAPTOP_GONE wraps router.ErrLaptopGone (the app serves);
// anything else (LOCAL_PORT_CLOSED, UNSPECIFIED) stays a failed dial (a 502
// that says why).
func closeError(intercept string, c *teleproto.Close) error {
	if c.GetReason() == teleproto.CloseReason_CLOSE_REASON_LAPTOP_GONE {
		return fmt.Errorf("intercept %s: %w: %s", intercept, router.ErrLaptopGone, c.GetError())
	}
	return fmt.Errorf("intercept %s: %s", intercept, c.GetError())
}
